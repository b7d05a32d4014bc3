"""EEG and BOLD readers (eeg2fmri.data.formats, eeg2fmri.data.bold): a malformed header,
marker file or path is one line naming the file and the problem, never a traceback from deep
inside a library."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from eeg2fmri.data.bold import read_bold_header
from eeg2fmri.errors import InputError
from eeg2fmri.preprocess.ingest import read_header
from eeg2fmri.store import SubjectFeatures

from .test_own_data import CHANNELS, _one_subject, _preprocess, _problems, planted


@pytest.fixture
def rec(tiny_raw: Path, tmp_path: Path) -> Path:
    """A copy of one simulated BrainVision recording."""
    src = tiny_raw / "sub-01" / "eeg"
    for f in src.glob("sub-01_task-rest_eeg.*"):
        shutil.copy(f, tmp_path / f.name)
    return tmp_path / "sub-01_task-rest_eeg.vhdr"


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


@pytest.mark.parametrize("old, new, message", [
    ("NumberOfChannels=8", "NumberOfChannels=0", "NumberOfChannels=0: a recording needs at "
                                                 "least one channel"),
    ("SamplingInterval=4000", "SamplingInterval=-4000", r"SamplingInterval=-4000\S*: microseconds "
                                                        "per sample must be positive"),
])
def test_impossible_header_values_are_named(rec, old, new, message):
    _edit(rec, old, new)
    with pytest.raises(InputError, match=message):
        read_header(rec, "brainvision")


def test_a_marker_before_the_first_sample_is_named_not_dropped(rec):
    vmrk = rec.with_suffix(".vmrk")
    lines = vmrk.read_text().splitlines()
    i = next(i for i, ln in enumerate(lines) if ln.startswith("Mk2="))
    fields = lines[i].split(",")
    fields[2] = "-40"
    lines[i] = ",".join(fields)
    vmrk.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match=r"vmrk: 1 marker\(s\) lie before the recording's first "
                                         r"sample \(the first: Mk2 at position -40"):
        read_header(rec, "brainvision")


def test_links_that_lead_nowhere_say_so(tmp_path):
    loop = tmp_path / "loop.vhdr"
    os.symlink(loop, loop)
    with pytest.raises(InputError, match="EEG file is a symbolic link loop"):
        read_header(loop, "brainvision")
    broken = tmp_path / "bold.nii.gz"
    os.symlink(tmp_path / "gone.nii.gz", broken)
    with pytest.raises(InputError, match="BOLD file is a broken symbolic link"):
        read_bold_header(broken)
    with pytest.raises(InputError, match="BOLD file is a folder"):
        read_bold_header(tmp_path)


@pytest.mark.parametrize("content", [b"0       " + b" " * 100, b"0" * 256 + b"x" * 40])
def test_a_file_that_is_not_edf_is_named(tmp_path, content):
    edf = tmp_path / "rec.edf"
    edf.write_bytes(content)
    with pytest.raises(InputError, match="rec.edf: not a valid EDF/BDF header"):
        read_header(edf, "edf")


# --- files whose size disagrees with their header (a user's dataset) ---------------------


def test_truncated_vectorized_binary_is_refused(tmp_path):
    root, files = _one_subject(tmp_path)
    vhdr = files["eeg"]
    text = vhdr.read_text().replace("DataOrientation=MULTIPLEXED", "DataOrientation=VECTORIZED")
    vhdr.write_text(text)
    dat = vhdr.with_suffix(".eeg")
    size = dat.stat().st_size
    with open(dat, "r+b") as f:
        f.truncate(size - 1000)
    [problem] = _problems(root)
    assert str(dat) in problem and f"{size - 1000:,} bytes" in problem
    assert "44 channels x 4 bytes" in problem
    with pytest.raises(InputError, match="truncated"):
        _preprocess(root, tmp_path / "out")
    assert not (tmp_path / "out" / "eeg.npy").exists()

def test_multiplexed_binary_cut_at_60_percent_is_refused(tmp_path):
    root, files = _one_subject(tmp_path)
    dat = files["eeg"].with_suffix(".eeg")
    frame = len(CHANNELS) * 4
    keep = int(dat.stat().st_size * 0.6) // frame * frame  # whole samples: only markers tell
    with open(dat, "r+b") as f:
        f.truncate(keep)
    [problem] = _problems(root)
    assert str(dat) in problem and "markers in sub-01_task-motor_eeg.vmrk lie past its end" \
        in problem
    assert f"holds {keep // frame:,} samples" in problem

def test_truncated_edf_is_refused(tmp_path):
    root, files = _one_subject(tmp_path, fmt="edf")
    size = files["eeg"].stat().st_size
    with open(files["eeg"], "r+b") as f:
        f.truncate(size - 5000)
    [problem] = _problems(root)
    assert str(files["eeg"]) in problem and f"{size - 5000:,} bytes" in problem
    assert "truncated" in problem

def test_eeglab_samples_in_an_fdt_pair_and_a_truncated_fdt_is_refused(tmp_path):
    root, files = _one_subject(tmp_path, fmt="eeglab")
    fdt = files["eeg"].with_suffix(".fdt")
    assert fdt.is_file() and _problems(root) == []
    _preprocess(root, tmp_path / "out")
    store = SubjectFeatures.open(tmp_path / "out")
    assert int(np.asarray(store.eeg).sum(axis=(1, 2)).argmax()) == planted(0)
    size = fdt.stat().st_size
    with open(fdt, "r+b") as f:
        f.truncate(size // 2)
    [problem] = _problems(root)  # MNE itself fails only when reading samples ("report a bug")
    assert str(fdt) in problem and f"{size // 2:,} bytes" in problem and f"{size:,}" in problem
    assert f"{len(CHANNELS)} channels" in problem and "truncated" in problem

def test_header_channel_count_disagreeing_with_its_channels_is_named(tmp_path):
    root, files = _one_subject(tmp_path)
    vhdr = files["eeg"]
    text = vhdr.read_text()
    vhdr.write_text(text.replace(f"NumberOfChannels={len(CHANNELS)}",
                                 f"NumberOfChannels={len(CHANNELS) + 1}"))
    [problem] = _problems(root)
    assert str(vhdr) in problem
    assert f"NumberOfChannels={len(CHANNELS) + 1}" in problem
    assert f"lists {len(CHANNELS)} channels" in problem
