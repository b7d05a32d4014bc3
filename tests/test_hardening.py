"""Faults and a newcomer's first hour: temp files, file modes, CUDA asked for on a CPU machine,
the report's dependency, fixtures inside the repository."""

from __future__ import annotations

import errno
import json
import os
import re
import stat
import tomllib

import numpy as np
import pytest
import torch

from eeg2fmri.cli import main
from eeg2fmri.device import pick_device
from eeg2fmri.errors import InputError
from eeg2fmri.io import atomic_path, save_nifti, write_json
from eeg2fmri.training.loop import clear_checkpoint

from .conftest import FIXTURES, REPO, tool_env


def test_stale_temp_files_of_an_output_are_removed_when_it_is_written_again(tmp_path):
    out = tmp_path / "metrics.json"
    stale = [tmp_path / ".metrics.json.abc123.tmp", tmp_path / ".metrics.json.x9.tmp.nii.gz"]
    for s in stale:
        s.write_text("left by a SIGKILL")
    other = tmp_path / ".other.json.abc.tmp"
    other.write_text("another output's")
    write_json(out, {"a": 1})
    assert out.is_file() and not any(s.exists() for s in stale) and other.exists()


def test_a_failed_nifti_write_leaves_nothing(tmp_path):
    out = tmp_path / "pred.nii.gz"
    with pytest.raises(ValueError):
        save_nifti(out, np.zeros((2, 2, 2, 2)), np.eye(3), 2.0)  # a 3x3 affine: refused
    assert list(tmp_path.iterdir()) == []
    save_nifti(out, np.zeros((2, 2, 2, 2)), np.eye(4), 2.0)
    assert [p.name for p in tmp_path.iterdir()] == ["pred.nii.gz"]


def test_files_get_the_mode_the_umask_gives(tmp_path):
    old = os.umask(0o022)
    try:
        write_json(tmp_path / "a.json", {})
        with atomic_path(tmp_path / "b.bin") as tmp:
            tmp.write_bytes(b"x")
    finally:
        os.umask(old)
    for name in ("a.json", "b.bin"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o644


def test_the_checkpoint_folder_is_removed_whole(tmp_path):
    ckpt = tmp_path / "checkpoint"
    ckpt.mkdir()
    (ckpt / "last.pt").write_bytes(b"x")
    (ckpt / ".last.pt.abc.tmp").write_bytes(b"left by a kill")
    clear_checkpoint(ckpt)
    assert not ckpt.exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_on_a_machine_without_it_is_one_line_naming_device(capsys):
    with pytest.raises(InputError, match="config key 'device' is 'cuda' but this machine has no"):
        pick_device("cuda")
    code = main(["evaluate", "--model", "x.pt", "--test-features", "x", "--metrics", "m.json",
                 "--predictions", "p.nii.gz", "--device", "cuda:0"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "device" in err


def test_the_report_dependency_is_declared():
    """`snakemake --report` imports pygments, which snakemake does not declare."""
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    assert any(d.startswith("pygments") for d in deps)


def test_fixtures_live_in_the_repository():
    assert FIXTURES.is_relative_to(REPO)
    assert (FIXTURES / "noddi-bids-headers" / "SOURCE.md").is_file()
    assert "CC BY 4.0" in (FIXTURES / "README.md").read_text() or \
        "Attribution 4.0" in (FIXTURES / "README.md").read_text()


def test_a_resumed_training_records_its_total_wall_time(tiny_features, tmp_path):
    from eeg2fmri.training.folds import loso_fold
    from eeg2fmri.training.trainer import train_fold

    from .conftest import arch_spec

    spec, fold = arch_spec("e2fnet", epochs=2), loso_fold(["sub-01", "sub-02", "sub-03",
                                                            "sub-04"], "sub-01")
    assert train_fold(spec, fold, tiny_features, tmp_path, stop_after_epoch=1,
                      progress=False) is None
    first = torch.load(tmp_path / "checkpoint" / "last.pt", weights_only=True)["wall_s"]
    record = train_fold(spec, fold, tiny_features, tmp_path, progress=False)
    assert first > 0 and record["summary"]["wall_s"] > first


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS])
def test_a_full_or_read_only_disk_is_one_line_naming_the_file(tmp_path, code, capsys):
    out = tmp_path / "metrics.json"
    with pytest.raises(InputError, match=r"metrics\.json: cannot be written: .* GB free there"):
        with atomic_path(out) as tmp:
            tmp.write_text("partial")
            raise OSError(code, os.strerror(code))
    assert list(tmp_path.iterdir()) == []  # nothing half-written, no temp file


def test_a_full_disk_during_a_verb_is_one_line(tmp_path, capsys, monkeypatch):
    import eeg2fmri.io as io

    def full(*_args, **_kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(io.tempfile, "mkstemp", full)
    code = main(["simulate", "--out", str(tmp_path / "sim"), "--settings",
                 '{"n_subjects": 3, "n_volumes": 30, "n_channels": 2, "grid": [8, 8, 8]}'])
    err = capsys.readouterr().err
    assert code == 2 and "No space left on device" in err and len(err.strip().splitlines()) == 1


def _as_a_user_without_write_access(folder) -> list[str]:
    """Make `folder` read-only; the command prefix under which that holds (root ignores file
    modes unless it drops CAP_DAC_OVERRIDE, which setpriv does)."""
    import shutil
    import subprocess

    folder.chmod(0o555)
    prefix = []
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("root without setpriv cannot be denied a write")
        prefix = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search", "--"]
    probe = subprocess.run([*prefix, "touch", str(folder / "probe")], capture_output=True)
    if probe.returncode == 0:
        pytest.skip("this machine cannot deny a write to this process")
    return prefix


@pytest.mark.workflow
@pytest.mark.parametrize("where", ["working directory", "results_root"])
def test_a_read_only_folder_stops_the_run_in_one_line_naming_it(tmp_path, where):
    """Snakemake itself crashed with a traceback on a read-only working directory, and stopped
    after building the DAG with a bare PermissionError on a read-only results folder."""
    import subprocess

    from .test_workflow import SNAKEMAKE, TINY_CONFIG

    config = tmp_path / "config.yaml"
    config.write_text(json.dumps({**TINY_CONFIG, "results_root": str(tmp_path / "ro/results")}))
    workdir = tmp_path / "work"
    workdir.mkdir()
    (tmp_path / "ro").mkdir()
    prefix = _as_a_user_without_write_access(workdir if where == "working directory"
                                             else tmp_path / "ro")
    r = subprocess.run([*prefix, *SNAKEMAKE, "-s", str(REPO / "Snakefile"), "-d", str(workdir),
                        "--cores", "1", "--configfile", str(config)],
                       capture_output=True, text=True, timeout=300, env=tool_env())
    out = r.stdout + r.stderr
    assert r.returncode != 0 and "Traceback" not in out
    if where == "results_root":
        assert "results_root" in out and f"{tmp_path / 'ro'}: Permission denied" in out
        assert not list(tmp_path.glob("work/data/*"))  # stopped before the first job
    else:
        assert f"the working directory cannot be written ({workdir}: Permission denied)" in out
    (tmp_path / "ro").chmod(0o755)
    workdir.chmod(0o755)


@pytest.mark.workflow
def test_after_snakemake_is_killed_the_profiles_sequence_finishes_the_run(tmp_path):
    """kill -9 of Snakemake leaves its lock: the profile alone stops on it; `--unlock`, then the
    profile (rerun-incomplete), finishes the run. The profile's comment gives that sequence."""
    import signal
    import subprocess
    import time

    from .test_workflow import SNAKEMAKE, TINY_CONFIG

    profile = REPO / "workflow/profiles/workstation"
    sequence = "--profile workflow/profiles/workstation --unlock"
    assert sequence in (profile / "config.yaml").read_text()
    config = tmp_path / "config.yaml"
    config.write_text(json.dumps({**TINY_CONFIG, "models": ["e2fnet", "mean_volume"]}))
    cmd = [*SNAKEMAKE, "-s", str(REPO / "Snakefile"), "-d", str(tmp_path / "w"), "--profile",
           str(profile), "--cores", "2", "--configfile", str(config)]
    env = tool_env()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True, env=env)
    deadline = time.time() + 240
    while not list(tmp_path.glob("w/results/logs/sim/train/*/*.log")) and \
            proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # Snakemake and its running jobs
    proc.wait()
    assert not (tmp_path / "w/results/sim/summary/summary.md").exists(), "killed too late"

    locked = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert locked.returncode != 0 and "--unlock" in locked.stdout + locked.stderr
    unlock = subprocess.run([*cmd, "--unlock"], capture_output=True, timeout=300, env=env)
    assert unlock.returncode == 0
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    assert (tmp_path / "w/results/sim/summary/summary.md").is_file()


def test_a_really_full_disk_is_one_line_and_leaves_no_temp_file(tmp_path):
    """A 48 KiB tmpfs (its own mount namespace; needs root or user namespaces): the simulation
    fills it. Each of two runs stops with one line naming the file and the free space, and no
    temporary file is left to keep the disk full."""
    import shutil
    import subprocess
    import sys

    if shutil.which("unshare") is None:
        pytest.skip("needs unshare(1)")
    disk = tmp_path / "disk"
    disk.mkdir()
    settings = json.dumps({"n_subjects": 3, "n_volumes": 30, "n_channels": 2, "grid": [8, 8, 8]})
    simulate = f"{sys.executable} -m eeg2fmri.cli simulate --out {disk}/sim --settings '{settings}'"
    script = (f"mount -t tmpfs -o size=48k tmpfs {disk} || exit 99; "
              f"for i in 1 2; do {simulate}; echo \"rc=$?\"; done; "
              f"echo left:; find {disk} -name '.*'")
    r = subprocess.run(["unshare", "-m", "--map-root-user", "sh", "-c", script]
                       if os.geteuid() != 0 else ["unshare", "-m", "sh", "-c", script],
                       capture_output=True, text=True, timeout=300, env=tool_env())
    if r.returncode == 99 or "rc=" not in r.stdout:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()[:200]}")
    assert r.stdout.count("rc=2") == 2, r.stdout + r.stderr
    errors = r.stderr.strip().splitlines()
    assert len(errors) == 2 and all(
        re.search(rf"simulate: error: {re.escape(str(disk))}/sim/\S+: cannot be written: "
                  r"(No space left on device|short write, the disk may be full \(.*\)); "
                  r"0\.0 GB free there", e) for e in errors), errors
    assert r.stdout.split("left:")[1].split() == []
