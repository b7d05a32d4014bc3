"""Writing files (eeg2fmri.io): temporary files and atomic renames, file modes, the checkpoint
folder, full and read-only disks, each one line naming the file."""

from __future__ import annotations

import errno
import json
import os
import re
import stat

import numpy as np
import pytest

from eeg2fmri.cli import main
from eeg2fmri.errors import InputError
from eeg2fmri.io import atomic_path, save_nifti, write_json
from eeg2fmri.training.loop import clear_checkpoint

from .conftest import REPO, tool_env


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


def test_the_failing_jobs_error_lines_are_found_in_snakemakes_log(tmp_path):
    from eeg2fmri.joblogs import failed_job_logs, report

    job = tmp_path / "train.log"
    job.write_text("loading\neeg2fmri train: error: x/meta.json: made with other settings\n")
    text = (f"Building DAG\n[Sun]\nError in rule train:\n    message: None\n    jobid: 3\n"
            f"    log: {job} (check log file(s) for error details)\n    shell:\n        x\n"
            f"Error in rule evaluate:\n    jobid: 4\n    log: {tmp_path / 'gone.log'} (check "
            "log file(s) for error details)\nShutting down\n")
    snake = tmp_path / "snakemake.log"
    snake.write_text(text)
    assert [r for r, _ in failed_job_logs(text)] == ["train", "evaluate"]
    out = report(snake)
    assert "rule train failed" in out and "eeg2fmri train: error: x/meta.json" in out
    assert "no log at" in out
