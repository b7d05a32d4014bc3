"""Fetch one subject of a real dataset into its raw root, or find it in a local copy, and record
the SHA-256 of every file the preprocessing reads in a manifest (verified again on reuse).

Sources (see `datasets.Source`): per-subject files from the OpenNeuro S3 bucket (listed with the
S3 ListObjectsV2 API, size and MD5 checked), zip archives of an OSF project (listed with the OSF
API, SHA-256 checked) and per-subject tarballs (OpenfMRI). Archives are kept under
`<raw root>/.downloads/` and only the subject's members are extracted.
"""

from __future__ import annotations

import fcntl
import fnmatch
import json
import os
import tarfile
import urllib.parse
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO
from xml.etree import ElementTree

from eeg2fmri.data.bold import sidecar_of
from eeg2fmri.data.datasets import DatasetSpec
from eeg2fmri.data.download import (
    CHUNK,
    DownloadError,
    Trust,
    download,
    get_text,
    read_manifest,
    sha256sum,
)
from eeg2fmri.data.formats import reader
from eeg2fmri.errors import InputError
from eeg2fmri.io import atomic_path, write_json

DEFAULT_URLS = {
    "openneuro": "https://s3.amazonaws.com/openneuro.org",
    "osf": "https://api.osf.io/v2",
    "openfmri": "https://openfmri.s3.amazonaws.com/tarballs",
}


def needed_files(ds: DatasetSpec, root: Path, subject: str) -> list[Path]:
    """Every file the preprocessing of `subject` reads: each run's EEG and its companions (a
    BrainVision header's data and markers, an MFF folder's files), the BOLD and its BIDS sidecar,
    and the dataset's ROI image and table."""
    files = []
    runs, _ = ds.subject_runs(root, subject)
    if not runs:
        raise InputError(root / subject, f"{ds.name} {subject}: no run with EEG and BOLD found")
    for run in runs:
        eeg, bold = run.eeg, run.bold
        fmt = reader(ds.format_of(eeg))
        if not (eeg.is_dir() if fmt.is_folder else eeg.is_file()):
            raise InputError(eeg, f"{ds.name} {subject}: "
                                  f"{'recording folder' if fmt.is_folder else 'file'} not found")
        if not bold.is_file():
            raise InputError(bold, f"{ds.name} {subject}: file not found")
        sidecar = sidecar_of(bold)
        files += [*([] if fmt.is_folder else [eeg]), *fmt.companions(eeg), bold,
                  *([sidecar] if sidecar else [])]
    rois = ds.roi_files(root)
    for path in (rois or ()):
        if path is not None:
            if not path.is_file():
                raise InputError(path, f"{ds.name}: the ROI file ({ds.key('rois')}) is not found")
            files.append(path)
    return list(dict.fromkeys(files))


def file_states(files: list[Path]) -> dict[str, list[int]]:
    """(size, modification time in ns) of each file: what the workflow compares at every run to
    see a file replaced in place, even by a copy that kept an older time (cp -p, rsync -t)."""
    out = {}
    for f in files:
        st = f.stat()
        out[str(f)] = [st.st_size, st.st_mtime_ns]
    return out


def _present(ds: DatasetSpec, root: Path, subject: str) -> bool:
    try:
        needed_files(ds, root, subject)
        return True
    except InputError:
        return False


def fetch_subject(ds: DatasetSpec, subject: str, root: str | Path, manifest: str | Path, *,
                  urls: dict[str, str] | None = None, local: bool = False,
                  progress: bool = True, strict: bool = False) -> list[Path]:
    """Download `subject` (unless present), verify, and write `manifest` {relative path: sha256}
    (and, under `_unverified`, the URLs of sources that publish no checksum: trust-on-first-use;
    `strict` refuses them instead).

    With `local`, `root` is an existing copy (the user's own files): nothing is downloaded, and a
    file that changed since the last manifest is recorded anew (and named), never refused: the
    workflow reruns what depends on it."""
    root, manifest = Path(root), Path(manifest)
    if subject not in ds.subjects:
        raise InputError(None, f"{subject} is not a subject of {ds.name} "
                               f"({', '.join(ds.subjects)})")
    trust = Trust(strict)
    if not _present(ds, root, subject):
        if local:
            needed_files(ds, root, subject)  # raises, naming the missing file
        if ds.source is None:
            raise InputError(root, f"{ds.name} has no download source; put the files here")
        get = {"openneuro": _openneuro, "osf": _osf, "tarball": _tarball}[ds.source.kind]
        get(ds, subject, root, {**DEFAULT_URLS, **(urls or {})}, progress, trust)
    files = needed_files(ds, root, subject)
    recorded = read_manifest(manifest)
    digests: dict[str, object] = {"_unverified": trust.unverified} if trust.unverified else {}
    if local:
        digests["_local"] = True
    for f in files:
        key = os.path.relpath(f, root)
        digests[key] = sha256sum(f)
        if key not in recorded or digests[key] == recorded[key]:
            continue
        if local:
            print(f"{f}: changed since {manifest} recorded it: recorded anew; what was made from "
                  "it is made again")
        else:
            _check(f, digests[key], recorded[key], manifest)
    write_json(manifest, digests)
    return files


def fetch_index(ds: DatasetSpec, root: str | Path, *, urls: dict[str, str] | None = None,
                progress: bool = True, strict: bool = False) -> Path:
    """The dataset's participants.tsv (and dataset_description.json), which name its subjects,
    checked against the size and MD5 of the S3 listing."""
    if ds.source is None or ds.source.kind != "openneuro":
        raise InputError(None, f"{ds.name}: only OpenNeuro datasets have a participants index")
    base = {**DEFAULT_URLS, **(urls or {})}["openneuro"].rstrip("/")
    trust = Trust(strict)
    for name in ("dataset_description.json", "participants.tsv"):
        key = f"{ds.source.dataset}/{name}"
        listed = {k: (size, md5) for k, size, md5 in s3_list(base, key)}
        if key not in listed:
            raise DownloadError(None, f"{base}: OpenNeuro {ds.source.dataset} has no {name}")
        size, md5 = listed[key]
        download(f"{base}/{key}", Path(root) / name, size=size, md5=md5, progress=progress,
                 trust=trust)
    return Path(root) / "participants.tsv"


def verify_manifest(manifest: str | Path, root: str | Path) -> None:
    """Every file in the manifest still has its recorded SHA-256."""
    manifest, root = Path(manifest), Path(root)
    recorded = read_manifest(manifest)
    for key, digest in recorded.items():
        if key.startswith("_"):
            continue
        path = root / key
        if not path.is_file():
            raise InputError(path, f"recorded in {manifest} but missing; rerun the fetch rule")
        if recorded.get("_local"):
            if sha256sum(path) != digest:
                raise InputError(path, f"changed since {manifest} recorded it (while this job "
                                       "ran?): run snakemake again, which records it anew and "
                                       "remakes what depends on it")
        else:
            _check(path, sha256sum(path), digest, manifest)


def _check(path: Path, digest: str, recorded: str, manifest: Path) -> None:
    """A downloaded file (never a user's own: those are recorded anew) against its manifest."""
    if digest != recorded:
        raise InputError(path, f"SHA-256 differs from the one recorded in {manifest} at "
                               "download; the downloaded copy changed or is corrupt: delete "
                               "this downloaded file (and the manifest) to fetch it again")


# -- OpenNeuro: the public S3 bucket -------------------------------------------------------------

S3 = "{http://s3.amazonaws.com/doc/2006-03-01/}"


def s3_list(base: str, prefix: str) -> Iterator[tuple[str, int, str | None]]:
    """(key, size, MD5) of every object under `prefix` (ListObjectsV2, paginated). The MD5 is
    the ETag where that is one; a multipart upload's ETag ("<hex>-<parts>") is not: None."""
    token = None
    while True:
        query = {"list-type": "2", "prefix": prefix}
        if token:
            query["continuation-token"] = token
        url = f"{base}/?{urllib.parse.urlencode(query)}"
        try:
            tree = ElementTree.fromstring(get_text(url))
        except ElementTree.ParseError as e:
            raise DownloadError(None, f"{url}: not an S3 listing ({e})") from None
        for item in tree.iter(f"{S3}Contents"):
            etag = item.findtext(f"{S3}ETag", "").strip('"')
            yield (item.findtext(f"{S3}Key", ""), int(item.findtext(f"{S3}Size", "0")),
                   etag if len(etag) == 32 and "-" not in etag else None)
        if tree.findtext(f"{S3}IsTruncated") != "true":
            return
        token = tree.findtext(f"{S3}NextContinuationToken")


def _openneuro(ds: DatasetSpec, subject: str, root: Path, urls: dict[str, str],
               progress: bool, trust: Trust) -> None:
    assert ds.source is not None
    base, dsid = urls["openneuro"].rstrip("/"), ds.source.dataset
    patterns = [p.format(subject=subject, id=ds.native(subject)) for p in ds.source.include]
    prefixes = sorted({p.split("*")[0].rsplit("/", 1)[0] for p in patterns})
    found = 0
    for prefix in prefixes:
        for key, size, md5 in s3_list(base, f"{dsid}/{prefix}/"):
            rel = key.removeprefix(f"{dsid}/")
            if not any(fnmatch.fnmatch(rel, p) for p in patterns):
                continue
            found += 1
            download(f"{base}/{urllib.parse.quote(key)}", root / rel, size=size, md5=md5,
                     progress=progress, trust=trust)
    if not found:
        raise DownloadError(None, f"{base}: no files of {subject} in OpenNeuro {dsid} match "
                                  f"{', '.join(patterns)}; is {subject} part of the dataset?")


# -- archives: OSF zips and OpenfMRI tarballs ----------------------------------------------------

@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Serialise jobs that share an archive (NODDI's zips hold every subject)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def osf_files(api: str, node: str) -> dict[str, dict]:
    """name -> {url, sha256, size} of the files at the top of an OSF project's storage."""
    url: str | None = f"{api.rstrip('/')}/nodes/{node}/files/osfstorage/"
    out = {}
    while url:
        try:
            page = json.loads(get_text(url))
        except ValueError as e:
            raise DownloadError(None, f"{url}: not an OSF file listing ({e})") from None
        for item in page.get("data", []):
            a = item.get("attributes", {})
            if a.get("kind") == "file":
                out[a["name"]] = {"url": item["links"]["download"], "size": a.get("size"),
                                  "sha256": a.get("extra", {}).get("hashes", {}).get("sha256")}
        url = page.get("links", {}).get("next")
    return out


def _osf(ds: DatasetSpec, subject: str, root: Path, urls: dict[str, str],
         progress: bool, trust: Trust) -> None:
    assert ds.source is not None
    listing = osf_files(urls["osf"], ds.source.dataset)
    nid = ds.native(subject)
    anchors, n = [f"EEG/{nid}/", f"fMRI/{nid}/"], 0
    for name in ds.source.archives:
        if name not in listing:
            raise DownloadError(None, f"OSF project {ds.source.dataset} has no file {name} "
                                      f"(files: {', '.join(sorted(listing))})")
        f = listing[name]
        archive = root / ".downloads" / name
        with _locked(archive):
            download(f["url"], archive, sha256=f["sha256"], size=f["size"], progress=progress,
                     trust=trust)
        n += _extract(archive, root, anchors)
    if not n:
        raise InputError(None, f"OSF project {ds.source.dataset}: no archive has files under "
                               f"{' or '.join(anchors)}; is {subject} part of the dataset?")


def _tarball(ds: DatasetSpec, subject: str, root: Path, urls: dict[str, str],
             progress: bool, trust: Trust) -> None:
    assert ds.source is not None
    nid = ds.native(subject)
    name = ds.source.url.format(id=nid)
    archive = root / ".downloads" / name
    with _locked(archive):
        download(f"{urls['openfmri'].rstrip('/')}/{name}", archive, progress=progress,
                 trust=trust)
    if not _extract(archive, root, [f"sub{nid}/"]):
        raise InputError(archive, f"has no members under sub{nid}/")


def _member_target(name: str, anchors: list[str]) -> str | None:
    """The member's path from the first anchor (e.g. `EEG/32/`) on, wherever the archive nests
    it; None for other members and for unsafe paths."""
    parts = name.replace("\\", "/").split("/")
    if name.startswith("/") or ".." in parts:
        return None
    path = "/".join(parts)
    for anchor in anchors:
        i = path.find(anchor)
        if i == 0 or (i > 0 and path[i - 1] == "/"):
            return path[i:] if not path.endswith("/") else None
    return None


MAX_MEMBER_BYTES = 64 << 30  # no recording file is larger; a bigger member is refused


def _check_size(archive: Path, name: str, size: int) -> None:
    if size > MAX_MEMBER_BYTES:
        raise DownloadError(archive, f"member {name} declares {size:,} bytes, more than the "
                                     f"{MAX_MEMBER_BYTES:,} any recording needs; refused")


def _copy_capped(src: BinaryIO, dest: Path, archive: Path, name: str) -> None:
    """Stream a member to `dest` in blocks, stopping at MAX_MEMBER_BYTES (whatever its header
    declared)."""
    written = 0
    with open(dest, "wb") as out:
        while block := src.read(CHUNK):
            written += len(block)
            if written > MAX_MEMBER_BYTES:
                raise DownloadError(archive, f"member {name} holds more than "
                                             f"{MAX_MEMBER_BYTES:,} bytes; refused")
            out.write(block)


def _extract(archive: Path, root: Path, anchors: list[str]) -> int:
    """Extract the members under `anchors`, each file written atomically; returns how many."""
    n = 0
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as z:
                for info in z.infolist():
                    target = _member_target(info.filename, anchors)
                    if target and not info.is_dir():
                        _check_size(archive, info.filename, info.file_size)
                        with z.open(info) as src, atomic_path(root / target) as tmp:
                            _copy_capped(src, tmp, archive, info.filename)
                        n += 1
        else:
            with tarfile.open(archive) as t:
                for member in t:
                    target = _member_target(member.name, anchors)
                    if target and member.isfile():
                        _check_size(archive, member.name, member.size)
                        src = t.extractfile(member)
                        assert src is not None
                        with atomic_path(root / target) as tmp:
                            _copy_capped(src, tmp, archive, member.name)
                        n += 1
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as e:
        archive.unlink(missing_ok=True)
        raise DownloadError(archive, f"archive is corrupt ({e}); it was removed, rerun to "
                                     "download it again") from None
    return n
