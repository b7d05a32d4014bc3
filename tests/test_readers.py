"""EEG and BOLD readers (eeg2fmri.data.formats, eeg2fmri.data.bold): a malformed header,
marker file or path is one line naming the file and the problem, never a traceback from deep
inside a library."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from eeg2fmri.data.bold import read_bold_header
from eeg2fmri.errors import InputError
from eeg2fmri.preprocess.ingest import read_header


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
