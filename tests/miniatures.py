"""Miniature copies of the real datasets' layouts (file names, formats, header fields, marker
conventions; signals synthetic) and a loopback server that serves them the way their hosts do:
the OpenNeuro S3 bucket (ListObjectsV2 XML, paginated), the OSF API (JSON, paginated) and the
OpenfMRI tarballs, all with HTTP Range support.

Each EEG carries a 10-40 Hz burst in exactly one volume's window (`BURST_VOLUME` of the first
run), so a test can check that the volume lands at the expected row of the features store.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import re
import shutil
import tarfile
import threading
import urllib.parse
import zipfile
from pathlib import Path
from xml.sax.saxutils import escape

import nibabel as nib
import numpy as np
import pybv
import scipy.io

from eeg2fmri.data.datasets import REAL

from .conftest import FIXTURES

BURST_VOLUME = 7
NODDI_HEADERS = FIXTURES / "noddi-bids-headers" / "derivatives"


def _burst(n: int, fs: float, hz: float, uv: float = 20.0) -> np.ndarray:
    return uv * np.sin(2 * np.pi * hz * np.arange(n) / fs)


def _bold(shape: tuple[int, int, int], n_vol: int, tr: float, zooms: tuple[float, ...],
          path: Path, seed: int = 0) -> None:
    """A smooth brain-like blob with small per-volume fluctuations, int16 like scanner output."""
    rng = np.random.default_rng(seed)
    grids = np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij")
    blob = np.exp(-sum(g**2 for g in grids) * 2.0)
    data = 800 * blob[..., None] * (1 + 0.02 * rng.standard_normal(n_vol)) + 50
    img = nib.Nifti1Image(data.astype(np.int16), np.diag([*zooms, 1.0]))
    img.header.set_xyzt_units("mm", "sec")
    img.header.set_zooms((*zooms, tr))
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(img, path)


def _vmrk_positions(vmrk: Path, description: str) -> list[int]:
    """0-based sample of each marker with `description` in a BrainVision marker file."""
    out = []
    for line in vmrk.read_text(encoding="utf-8").splitlines():
        if line.startswith("Mk") and "=" in line:
            fields = line.split("=", 1)[1].split(",")
            if len(fields) > 2 and fields[1] == description:
                out.append(int(fields[2]) - 1)
    return out


def _shortened_vmrk(vmrk: Path, n_samples: int, description: str, n_vol: int) -> bytes:
    """The marker file of a recording cut to `n_samples`: markers past the end removed and only
    the first `n_vol` volume markers kept, so that markers and volumes pair one to one."""
    out, k, seen = [], 0, 0
    for line in vmrk.read_text(encoding="utf-8").splitlines():
        if line.startswith("Mk") and "=" in line:
            fields = line.split("=", 1)[1].split(",")
            if int(fields[2]) - 1 >= n_samples:
                continue
            if fields[1] == description:
                seen += 1
                if seen > n_vol:
                    continue
            k += 1
            line = f"Mk{k}=" + line.split("=", 1)[1]
        out.append(line)
    return ("\n".join(out) + "\n").encode()


def build_noddi(srv: Path, ids: tuple[str, ...] = ("32", "35"), n_vol: int = 30) -> dict:
    """OSF zips EEG1/EEG2/fMRI as in project 94c5t. EEG: the real BrainVision headers and marker
    files of sub-32 (MULTIPLEXED) and sub-35 (VECTORIZED), shortened to `n_vol` volumes; the
    data file is named after the header, not after its stale DataFile= line."""
    zips = {"EEG1.zip": zipfile.ZipFile(srv / "osf" / "EEG1.zip", "w"),
            "EEG2.zip": zipfile.ZipFile(srv / "osf" / "EEG2.zip", "w"),
            "fMRI.zip": zipfile.ZipFile(srv / "osf" / "fMRI.zip", "w")}
    first = {}
    for k, nid in enumerate(ids):
        src = NODDI_HEADERS / f"sub-{nid}" / "eeg"
        vhdr = (src / f"sub-{nid}_task-rest_eeg.vhdr").read_text(encoding="utf-8")
        vmrk = src / f"sub-{nid}_task-rest_eeg.vmrk"
        onsets = _vmrk_positions(vmrk, "Scan Start")
        n = onsets[0] + (n_vol + 2) * 540
        vhdr = re.sub(r"^DataPoints=\d+", f"DataPoints={n}", vhdr, flags=re.M)
        data = np.zeros((64, n), dtype="<f4")
        a = onsets[0] + BURST_VOLUME * 540
        data[:, a:a + 540] = _burst(540, 250.0, 10.0)
        # VECTORIZED: channel after channel; MULTIPLEXED: sample after sample
        raw = data.tobytes() if "=VECTORIZED" in vhdr else data.T.tobytes()
        top = "" if k == 0 else "NODDI/"  # the second archive nests its folders one level down
        z = zips["EEG1.zip" if k == 0 else "EEG2.zip"]
        z.writestr(f"{top}EEG/{nid}/export/{nid}_rest.vhdr", vhdr)
        z.writestr(f"{top}EEG/{nid}/export/{nid}_rest.vmrk",
                   _shortened_vmrk(vmrk, n, "Scan Start", n_vol))
        z.writestr(f"{top}EEG/{nid}/export/{nid}_rest.dat", raw)
        bold = srv / "tmp" / f"{nid}.nii.gz"
        _bold((64, 64, 30), n_vol, 2.16, (3.0, 3.0, 4.0), bold, seed=k)
        zips["fMRI.zip"].write(bold, f"fMRI/{nid}/rest_{nid}_cross.nii.gz")
        first[f"sub-{nid}"] = onsets[0]
    for z in zips.values():
        z.close()
    return {"subjects": [f"sub-{i}" for i in ids], "first_marker": first, "n_vol": n_vol}


def build_oddball(srv: Path, nid: str = "001", n_vol: int = 24) -> dict:
    """OpenfMRI tarball ds116_subNNN.tgz: EEG_noGA.mat (49 rows, 1 kHz) and BOLD per run."""
    ds = REAL["oddball"]
    stage = srv / "tmp" / f"sub{nid}"
    for r, run in enumerate(ds.runs):
        # every run its own samples (a byte-identical copy of another run is refused)
        data = (0.01 * np.random.default_rng(r).standard_normal((49, n_vol * 2000))
                ).astype(np.float32)
        if r == 0:
            data[:43, BURST_VOLUME * 2000:(BURST_VOLUME + 1) * 2000] = _burst(2000, 1000.0, 20.0)
        eeg = stage / "EEG" / run / "EEG_noGA.mat"
        eeg.parent.mkdir(parents=True, exist_ok=True)
        scipy.io.savemat(eeg, {"data_noGA": data})
        _bold((64, 64, 32), n_vol, 2.0, (3.0, 3.0, 4.0), stage / "BOLD" / run / "bold.nii.gz",
              seed=r)
    (stage / "model").mkdir()
    (stage / "model" / "README").write_text("not needed by eeg2fmri\n")
    with tarfile.open(srv / "openfmri" / f"ds116_sub{nid}.tgz", "w:gz", compresslevel=1) as t:
        t.add(stage, arcname=f"sub{nid}")
    shutil.rmtree(stage)
    return {"subjects": [f"sub-{nid}"], "n_vol": n_vol, "runs": len(ds.runs)}


def _write_vhdr(folder: Path, base: str, data_uv: np.ndarray, fs: float, names: list[str],
                events: list[dict], fmt: str) -> Path:
    pybv.write_brainvision(data=data_uv * 1e-6, sfreq=fs, ch_names=names, fname_base=base,
                           folder_out=folder, overwrite=True, events=events or None,
                           resolution=0.1 if fmt == "binary_int16" else 1e-3, unit="µV",
                           fmt=fmt)
    return folder / f"{base}.vhdr"


def build_cnepfl(srv: Path, subject: str = "sub-21", n_vol: int = 22) -> dict:
    """OpenNeuro ds002158: raw 5 kHz BrainVision (64 EEG + ECG, int16) whose DataFile=/
    MarkerFile= lines name the acquisition files, 108x108x64 BOLD, participants.tsv."""
    root = srv / "s3" / "ds002158"
    eeg_dir = root / subject / "ses-001" / "eeg"
    eeg_dir.mkdir(parents=True)
    n = n_vol * 6400 + 3000
    data = np.zeros((65, n))
    data[:64, BURST_VOLUME * 6400:(BURST_VOLUME + 1) * 6400] = _burst(6400, 5000.0, 25.0)
    base = f"{subject}_ses-001_task-main_run-001_eeg"
    names = [f"E{i + 1}" for i in range(64)] + ["ECG"]
    vhdr = _write_vhdr(eeg_dir, base, data, 5000.0, names, [], "binary_int16")
    text = vhdr.read_text(encoding="utf-8")
    text = re.sub(r"^DataFile=.*$", "DataFile=s21_run1_08062017.eeg", text, flags=re.M)
    text = re.sub(r"^MarkerFile=.*$", "MarkerFile=s21_run1_08062017.vmrk", text, flags=re.M)
    vhdr.write_text(text, encoding="utf-8")
    (eeg_dir / f"{subject}_ses-001_task-main_run-002_eeg.vhdr").write_text("not fetched\n")
    _bold((108, 108, 64), n_vol, 1.28, (2.0, 2.0, 2.0),
          root / subject / "ses-001" / "func" / f"{subject}_ses-001_task-main_run-001_bold.nii.gz")
    ids = ["sub-02", "sub-04", "sub-21", "sub-22", "sub-24", "sub-26"]
    (root / "participants.tsv").write_text("participant_id\tage\n" +
                                           "".join(f"{s}\t30\n" for s in ids))
    (root / "dataset_description.json").write_text(json.dumps({"Name": "CN-EPFL miniature",
                                                               "BIDSVersion": "1.2.0"}))
    return {"subjects": [subject], "n_vol": n_vol, "participants": ids}


def build_xp2(srv: Path, subjects: tuple[str, ...] = ("sub-xp201", "sub-xp202", "sub-xp203"),
              n_vol: int = 24, lead_in: int = 437) -> dict:
    """OpenNeuro ds002338: eeg_pp derivatives at 200 Hz (63 EEG + ECG) with one R128 marker per
    volume from `lead_in` on, and 16-slice BOLD runs."""
    ds = REAL["xp2"]
    root = srv / "s3" / "ds002338"
    names = [f"E{i + 1}" for i in range(63)] + ["ECG"]
    rng = np.random.default_rng(0)
    for k, subject in enumerate(subjects):
        eeg_dir = root / "derivatives" / subject / "eeg_pp"
        eeg_dir.mkdir(parents=True)
        for r, run in enumerate(ds.runs):
            data = rng.standard_normal((64, lead_in + (n_vol + 1) * 200)) * 0.01
            if r == 0:
                a = lead_in + BURST_VOLUME * 200
                data[:63, a:a + 200] += _burst(200, 200.0, 20.0)
            events = [{"onset": lead_in + j * 200, "description": 128, "type": "Response"}
                      for j in range(n_vol)]
            _write_vhdr(eeg_dir, f"{subject}_{run}_eeg_pp", data, 200.0, names, events,
                        "binary_float32")
            _bold((64, 64, 16), n_vol, 1.0, (2.0, 2.0, 4.0),
                  root / subject / "func" / f"{subject}_{run}_bold.nii.gz", seed=100 * k + r)
    return {"subjects": list(subjects), "n_vol": n_vol, "lead_in": lead_in,
            "runs": len(ds.runs)}


def build_all(srv: Path) -> dict[str, dict]:
    for d in ("osf", "openfmri", "s3", "tmp"):
        (srv / d).mkdir(parents=True, exist_ok=True)
    out = {"noddi": build_noddi(srv), "oddball": build_oddball(srv),
           "cnepfl": build_cnepfl(srv), "xp2": build_xp2(srv)}
    shutil.rmtree(srv / "tmp")
    return out


class Handler(http.server.BaseHTTPRequestHandler):
    """Serves `root` like the real hosts; `faults` injects one-off failures by path."""

    root: Path
    log: list[tuple[str, str | None]]
    faults: dict[str, str]  # path -> "truncate" (send half, then drop the connection)
    page_size = 2

    def do_GET(self):  # noqa: N802
        url = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(url.query))
        type(self).log.append((url.path, self.headers.get("Range")))
        if url.path == "/s3/" and query.get("list-type") == "2":
            return self._send(self._s3_listing(query).encode(), "application/xml")
        m = re.fullmatch(r"/osf/nodes/(\w+)/files/osfstorage/", url.path)
        if m:
            return self._send(json.dumps(self._osf_listing(int(query.get("page", 1)))).encode(),
                              "application/json")
        mapping = {"/s3/": "s3/", "/osf-files/": "osf/", "/openfmri/": "openfmri/"}
        for prefix, folder in mapping.items():
            if url.path.startswith(prefix):
                path = self.root / folder / urllib.parse.unquote(url.path[len(prefix):])
                if path.is_file():
                    return self._file(url.path, path)
        self.send_error(404)

    def _s3_listing(self, query: dict[str, str]) -> str:
        keys = sorted(str(p.relative_to(self.root / "s3")) for p in (self.root / "s3").rglob("*")
                      if p.is_file() and str(p.relative_to(self.root / "s3")).startswith(
                          query.get("prefix", "")))
        start = int(query.get("continuation-token", 0))
        page = keys[start:start + self.page_size]
        more = start + self.page_size < len(keys)
        items = "".join(
            f"<Contents><Key>{escape(k)}</Key><Size>{(self.root / 's3' / k).stat().st_size}"
            f"</Size><ETag>&quot;{_md5(self.root / 's3' / k)}&quot;</ETag></Contents>"
            for k in page)
        token = f"<NextContinuationToken>{start + self.page_size}</NextContinuationToken>"
        return ('<?xml version="1.0" encoding="UTF-8"?>'
                '<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
                f"<Name>openneuro.org</Name><KeyCount>{len(page)}</KeyCount>"
                f"<IsTruncated>{'true' if more else 'false'}</IsTruncated>"
                f"{token if more else ''}{items}</ListBucketResult>")

    def _osf_listing(self, page: int) -> dict:
        files = sorted((self.root / "osf").iterdir())
        base = f"http://{self.headers['Host']}"
        chunk = files[(page - 1) * self.page_size: page * self.page_size]
        data = [{"attributes": {"kind": "file", "name": f.name, "size": f.stat().st_size,
                                "extra": {"hashes": {"sha256": _sha256(f)}}},
                 "links": {"download": f"{base}/osf-files/{f.name}"}} for f in chunk]
        more = page * self.page_size < len(files)
        nxt = f"{base}{urllib.parse.urlsplit(self.path).path}?page={page + 1}" if more else None
        return {"data": data, "links": {"next": nxt}}

    def _file(self, key: str, path: Path) -> None:
        body = path.read_bytes()
        start = 0
        rng = self.headers.get("Range")
        if rng:
            start = int(rng.split("=")[1].split("-")[0])
            if start >= len(body):
                self.send_error(416)
                return
        self.send_response(206 if rng else 200)
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        if self.faults.pop(key, None) == "truncate":
            self.wfile.write(body[start:start + (len(body) - start) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body[start:])

    def _send(self, body: bytes, kind: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()  # noqa: S324


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class Server:
    """A loopback server over `root`; `urls` are the workflow's download_urls for it."""

    def __init__(self, root: Path):
        handler = type("H", (Handler,), {"root": root, "log": [], "faults": {}})
        self.handler = handler
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.urls = {"openneuro": f"{base}/s3", "osf": f"{base}/osf",
                     "openfmri": f"{base}/openfmri"}

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
