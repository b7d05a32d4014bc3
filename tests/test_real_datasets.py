"""Real datasets: miniature copies of each dataset's layout, served from a loopback server the way
its host serves it, fetched and preprocessed through the workflow."""

from __future__ import annotations

import hashlib
import json
import socket
from pathlib import Path

import numpy as np
import pytest

from eeg2fmri.cli import main
from eeg2fmri.data.datasets import REAL, get_dataset
from eeg2fmri.data.download import DownloadError
from eeg2fmri.data.fetch import fetch_subject
from eeg2fmri.preprocess.subject import preprocess_subject
from eeg2fmri.store import SubjectFeatures

from .miniatures import BURST_VOLUME, Server, build_all
from .test_workflow import jobs, run, scheduled


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("hosts")
    facts = build_all(root)
    server = Server(root)
    yield server, facts
    server.close()


def _burst_row(store: SubjectFeatures) -> int:
    """The row of the features store (first run) with the most EEG power."""
    a, b = store.segments[0]
    return int(np.asarray(store.eeg[a:b]).sum(axis=(1, 2)).argmax())


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# What each miniature must give: subject, EEG channels kept, bins, grid (Z, X, Y), pairs per run,
# and the store row of the burst volume (dummy scans dropped).
EXPECTED = {
    "noddi": ("sub-35", 63, 249, (30, 64, 64), 30, BURST_VOLUME),
    "oddball": ("sub-001", 43, 249, (32, 64, 64), 24, BURST_VOLUME),
    "cnepfl": ("sub-21", 64, 249, (30, 64, 64), 22, BURST_VOLUME),
    "xp2": ("sub-xp201", 63, 100, (16, 64, 64), 22, BURST_VOLUME - 2),
}


@pytest.mark.workflow
@pytest.mark.parametrize("name", ["noddi", "oddball", "cnepfl", "xp2"])
def test_download_and_preprocess_through_the_workflow(served, tmp_path, name):
    server, facts = served
    subject, n_ch, n_bins, grid, per_run, row = EXPECTED[name]
    target = f"data/features/{name}/{subject}/meta.json"
    r = run(tmp_path, "--cores", "2", target,
            config={"datasets": [name], "download_urls": server.urls})
    assert r.returncode == 0, r.stdout + r.stderr
    store = SubjectFeatures.open(tmp_path / "data" / "features" / name / subject)
    ds = REAL[name]
    assert store.eeg.shape == (per_run * len(ds.runs), n_ch, n_bins)
    assert store.bold.shape == (per_run * len(ds.runs), *grid)
    assert store.segments == [(i * per_run, (i + 1) * per_run) for i in range(len(ds.runs))]
    assert _burst_row(store) == row, "the burst volume landed at the wrong row"
    assert store.meta["coverage"] == ds.coverage
    # every file preprocessing read is in the manifest with its SHA-256
    manifest = json.loads((tmp_path / "data" / "manifests" / name / f"{subject}.json")
                          .read_text())
    raw = tmp_path / "data" / "raw" / name
    files = [k for k in manifest if not k.startswith("_")]  # _unverified: see below
    assert len(files) == len(ds.runs) * (2 if ds.eeg_format == "mat" else 4)
    for rel in files:
        assert _sha(raw / rel) == manifest[rel]
    # only OpenfMRI publishes no checksum: its tarball is recorded as trust-on-first-use
    assert bool(manifest.get("_unverified")) == (name == "oddball")
    log = (tmp_path / "data" / "logs" / name / "preprocess" / f"{subject}.log").read_text()
    if name in ("noddi", "cnepfl"):  # stale DataFile= lines, repaired
        assert "repaired header line DataFile=" in log


def test_noddi_alignment_uses_the_real_scan_start_markers(served, tmp_path):
    """sub-35's scan starts 129.6 s into the EEG: marker-based pairing finds the burst volume,
    the references' pairing (EEG sample 0 = volume 0) pairs it with EEG from the wrong time."""
    server, facts = served
    ds = get_dataset("noddi", {})
    root = tmp_path / "raw"
    fetch_subject(ds, "sub-35", root, tmp_path / "m.json", urls=server.urls, progress=False)
    ours = preprocess_subject(ds, root, "sub-35", tmp_path / "ours", n_bins=249)
    assert ours["first_onset_sample"] == facts["noddi"]["first_marker"]["sub-35"] == 32392
    assert _burst_row(SubjectFeatures.open(tmp_path / "ours")) == BURST_VOLUME
    paper = preprocess_subject(ds, root, "sub-35", tmp_path / "paper", n_bins=249,
                               pairing="paper")
    assert paper["dropped_volumes"] == 6 and paper["runs"][0]["first_volume"] == 6
    assert paper["first_onset_sample"] == 6 * 540  # windows cut from EEG sample 0 on
    store = SubjectFeatures.open(tmp_path / "paper")
    assert float(np.asarray(store.eeg).max()) < 1e-3  # the burst is never in a paired window


def test_xp2_paper_pairing_ignores_markers_and_drops_six(served, tmp_path):
    server, facts = served
    ds = get_dataset("xp2", {})
    root = tmp_path / "raw"
    fetch_subject(ds, "sub-xp201", root, tmp_path / "m.json", urls=server.urls, progress=False)
    meta = preprocess_subject(ds, root, "sub-xp201", tmp_path / "f", n_bins=100, pairing="paper")
    lead = facts["xp2"]["lead_in"]  # the burst starts at sample lead + 7 * 200 = 1837
    assert (lead + BURST_VOLUME * 200) // 200 - 6 == 3
    assert _burst_row(SubjectFeatures.open(tmp_path / "f")) == 3
    assert meta["runs"][0]["first_volume"] == 6


def test_cnepfl_subjects_come_from_participants_and_the_paper_split(served, tmp_path):
    server, facts = served
    assert main(["fetch", "--index", "--dataset", "cnepfl", "--raw", str(tmp_path),
                 "--urls", json.dumps(server.urls)]) == 0
    ds = get_dataset("cnepfl", {}, tmp_path)
    assert list(ds.subjects) == facts["cnepfl"]["participants"]
    assert ds.folds() == ["split-paper"]


def test_truncated_transfer_is_resumed_and_a_bad_checksum_reported(served, tmp_path):
    server, _ = served
    ds = get_dataset("xp2", {})
    key = "/s3/ds002338/sub-xp201/func/sub-xp201_task-MIpre_bold.nii.gz"
    server.handler.faults[key] = "truncate"
    with pytest.raises(DownloadError, match="transfer ended after .* rerun to resume"):
        fetch_subject(ds, "sub-xp201", tmp_path, tmp_path / "m.json", urls=server.urls,
                      progress=False)
    assert not (tmp_path / key.split("ds002338/")[1]).exists()  # only the .part
    fetch_subject(ds, "sub-xp201", tmp_path, tmp_path / "m.json", urls=server.urls,
                  progress=False)
    ranges = [rng for path, rng in server.handler.log if path == key]
    assert ranges[-1] is not None and ranges[-1].startswith("bytes=")  # resumed, not restarted


def test_wrong_archive_checksum_is_reported_and_nothing_kept(served, tmp_path, monkeypatch):
    server, _ = served
    from eeg2fmri.data import fetch

    real = fetch.osf_files

    def lying(api, node):
        files = real(api, node)
        files["fMRI.zip"]["sha256"] = "0" * 64
        return files

    monkeypatch.setattr(fetch, "osf_files", lying)
    with pytest.raises(DownloadError, match=r"fMRI\.zip.*SHA-256 .* does not match"):
        fetch_subject(get_dataset("noddi", {}), "sub-32", tmp_path, tmp_path / "m.json",
                      urls=server.urls, progress=False)
    assert not list((tmp_path / ".downloads").glob("fMRI.zip*[!k]"))  # no archive, no .part
    assert not (tmp_path / "m.json").exists()


def test_changed_raw_file_is_caught_before_preprocessing(served, tmp_path, capsys):
    server, _ = served
    manifest = tmp_path / "m.json"
    assert main(["fetch", "--dataset", "oddball", "--subject", "sub-001", "--raw",
                 str(tmp_path / "r"), "--manifest", str(manifest), "--urls",
                 json.dumps(server.urls), "--no-progress"]) == 0
    bold = tmp_path / "r" / "sub001" / "BOLD" / "task001_run002" / "bold.nii.gz"
    bold.write_bytes(bold.read_bytes()[:-10])
    code = main(["preprocess", "--dataset", "oddball", "--raw", str(tmp_path / "r"),
                 "--subject", "sub-001", "--out", str(tmp_path / "f"),
                 "--manifest", str(manifest)])
    err = capsys.readouterr().err
    assert code == 2 and str(bold) in err and "SHA-256 differs" in err
    assert "Traceback" not in err and not (tmp_path / "f").exists()


def test_local_copy_is_verified_without_downloading(served, tmp_path):
    server, _ = served
    ds = get_dataset("xp2", {})
    fetch_subject(ds, "sub-xp201", tmp_path / "copy", tmp_path / "a.json", urls=server.urls,
                  progress=False)
    n = len(server.handler.log)
    files = fetch_subject(ds, "sub-xp201", tmp_path / "copy", tmp_path / "b.json", local=True)
    assert len(server.handler.log) == n and len(files) == 4 * len(ds.runs)
    with pytest.raises(Exception, match="file not found"):
        fetch_subject(ds, "sub-xp202", tmp_path / "copy", tmp_path / "c.json", local=True)


def test_unreachable_host_fails_with_one_clear_message(tmp_path, capsys):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    urls = {"openfmri": f"http://127.0.0.1:{port}/tarballs"}
    code = main(["fetch", "--dataset", "oddball", "--subject", "sub-002", "--raw",
                 str(tmp_path), "--manifest", str(tmp_path / "m.json"), "--urls",
                 json.dumps(urls), "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert f"http://127.0.0.1:{port}/tarballs/ds116_sub002.tgz" in err[0]
    assert "unreachable" in err[0]


@pytest.mark.workflow
def test_dry_runs_show_the_papers_fold_schemes(tmp_path):
    r = run(tmp_path, "-n", "--cores", "2", "--config", "datasets=[oddball]", "models=[e2fnet]")
    assert r.returncode == 0, r.stdout + r.stderr
    counts = jobs(r.stdout)
    assert counts["train"] == counts["evaluate"] == counts["fetch"] == 17
    # CN-EPFL from a local copy whose participants.tsv lists 20 subjects: one fixed split
    local = tmp_path / "cnepfl"
    local.mkdir()
    ids = [f"sub-{i:02d}" for i in (2, *range(4, 12), *range(13, 20), 21, 22, 24, 26)]
    (local / "participants.tsv").write_text("participant_id\n" + "\n".join(ids) + "\n")
    r = run(tmp_path, "-n", "--cores", "2", "--config", "datasets=[cnepfl]", "models=[e2fnet]",
            f"raw_roots={{cnepfl: {local}}}")
    assert r.returncode == 0, r.stdout + r.stderr
    assert jobs(r.stdout)["train"] == 1 and jobs(r.stdout)["fetch"] == 20
    [train_in] = scheduled(r.stdout, "train", "input")
    used = {f.split("/")[3] for f in train_in if f.startswith("data/features/")}
    assert len(used) == 16 and not used & {"sub-21", "sub-22", "sub-24", "sub-26"}


@pytest.mark.workflow
def test_models_run_unchanged_on_a_real_layout(served, tmp_path):
    """XP-2 (8 runs per subject, 16-slice partial coverage), three subjects: fetch, preprocess,
    train, evaluate and the summary table, as for the simulated dataset."""
    server, facts = served
    config = {"datasets": ["xp2"], "subjects": {"xp2": facts["xp2"]["subjects"]},
              "models": ["e2fnet", "mean_volume"], "folds": ["sub-xp202"],
              "download_urls": server.urls,
              "features": {"context": 4},
              "model_settings": {"e2fnet": {"arch": "e2fnet", "width": 8},
                                 "mean_volume": {"arch": "mean_volume"}},
              "training": {"epochs": 1, "batch_size": 16, "warmup_steps": 1}}
    r = run(tmp_path, "--cores", "2", config=config)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    table = (tmp_path / "results" / "xp2" / "summary" / "summary.md").read_text()
    assert "e2fnet" in table and "mean_volume" in table
    m = json.loads((tmp_path / "results/xp2/e2fnet/fold-sub-xp202/metrics.json").read_text())
    assert m["n_volumes"] == 8 * (22 - 4)  # contexts never cross the 8 runs
    assert m["test_subjects"] == ["sub-xp202"]


def test_a_source_without_checksums_is_refused_when_strict_else_recorded(served, tmp_path,
                                                                          capsys):
    """OpenfMRI tarballs come with no checksum: download_strict refuses them; otherwise they are
    taken with one loud warning and listed in the manifest as trust-on-first-use."""
    server, _ = served
    ds = get_dataset("oddball", {})
    with pytest.raises(DownloadError, match=r"ds116_sub001\.tgz: the source publishes no "
                                            r"checksum .* refused \(config download_strict"):
        fetch_subject(ds, "sub-001", tmp_path / "a", tmp_path / "a.json", urls=server.urls,
                      progress=False, strict=True)
    assert not [p for p in (tmp_path / "a").rglob("*.tgz*") if p.suffix != ".lock"]
    assert not (tmp_path / "a.json").exists()
    fetch_subject(ds, "sub-001", tmp_path / "b", tmp_path / "b.json", urls=server.urls,
                  progress=False)
    manifest = json.loads((tmp_path / "b.json").read_text())
    assert [u.rsplit("/", 1)[-1] for u in manifest["_unverified"]] == ["ds116_sub001.tgz"]
    assert capsys.readouterr().err.count("WARNING: ") == 1
    main(["preprocess", "--dataset", "oddball", "--raw", str(tmp_path / "b"), "--subject",
          "sub-001", "--out", str(tmp_path / "out"), "--manifest", str(tmp_path / "b.json"),
          "--config", json.dumps({"features": {"n_bins": 249}})])
    assert (tmp_path / "out" / "meta.json").is_file()  # the manifest still verifies


def test_an_archive_member_larger_than_the_cap_is_refused(served, tmp_path, monkeypatch):
    server, _ = served
    from eeg2fmri.data import fetch

    monkeypatch.setattr(fetch, "MAX_MEMBER_BYTES", 1000)
    with pytest.raises(DownloadError, match=r"member .* declares .* bytes, more than the 1,000"):
        fetch_subject(get_dataset("oddball", {}), "sub-001", tmp_path, tmp_path / "m.json",
                      urls=server.urls, progress=False)
    assert not list(tmp_path.rglob("*.mat")) and not (tmp_path / "m.json").exists()
