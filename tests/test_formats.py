"""The EEG format registry (eeg2fmri.data.formats): every format is one reader module and one
registry line, and every caller takes formats from there. EGI MFF proves the shape: a fixture
written by a real writer (mffpy) from the simulated recording gives the same features."""

from __future__ import annotations

import datetime as dt
import shutil
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import yaml

from eeg2fmri.data.datasets import get_dataset
from eeg2fmri.data.formats import FORMATS, extensions, format_by_extension, reader
from eeg2fmri.preprocess.inspect import inspect_dataset
from eeg2fmri.preprocess.subject import preprocess_subject
from eeg2fmri.store import SubjectFeatures

from .conftest import REPO, TINY, read_eeg


def test_the_schema_lists_the_registered_formats():
    schema = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
    entry = schema["properties"]["dataset_settings"]["additionalProperties"]["properties"]
    assert entry["eeg_format"]["enum"] == ["auto", *FORMATS]
    for ending in extensions():
        assert ending in entry["eeg_format"]["description"]
    synthesize = schema["properties"]["synthesize"]["items"]["properties"]
    assert synthesize["format"]["enum"] == [f for f in FORMATS if f != "mat"]


@pytest.mark.parametrize("name, fmt", [("a.vhdr", "brainvision"), ("a.EDF", "edf"),
                                       ("a.fif.gz", "fif"), ("rec.mff", "egi"), ("a.txt", None)])
def test_formats_by_extension(name, fmt):
    assert format_by_extension(Path(name)) == fmt


def test_every_format_has_a_reader():
    for fmt in FORMATS:
        assert reader(fmt).name == fmt


def _to_mff(vhdr: Path, out: Path) -> None:
    """The BrainVision recording written again by mffpy (EGI's own Python writer) on a
    32-channel HydroCel net: its channels first, the rest flat; R128 markers as TREV events."""
    mffpy = pytest.importorskip("mffpy")
    from mffpy.bin_writer import BinWriter

    rec = read_eeg(vhdr)
    data = np.zeros((33, rec.data.shape[1]), np.float32)
    data[:len(rec.data)] = rec.data * 1e6  # MFF holds microvolts
    start = dt.datetime(2026, 1, 1, 12, tzinfo=dt.UTC)
    onsets = rec.markers["Response/R128"]
    writer = mffpy.Writer(str(out))
    writer.addxml("fileInfo", recordTime=start)
    writer.add_coordinates_and_sensor_layout("HydroCel GSN 32 1.0")
    signal = BinWriter(sampling_rate=int(rec.fs), data_type="EEG")
    signal.add_block(data)
    writer.addbin(signal)
    events = [{"beginTime": start + dt.timedelta(seconds=o / rec.fs), "duration": 1000,
               "code": "TREV", "label": "TREV"} for o in onsets]
    writer.addxml("eventTrack", filename="Events_ECI TCP-IP 55513.xml", name="ECI TCP/IP 55513",
                  trackType="EVNT", events=events)
    writer.write()


def test_an_mff_recording_gives_the_features_of_the_same_eeg_in_brainvision(tiny_raw,
                                                                           tmp_path):
    root = tmp_path / "mff"
    src = tiny_raw / "sub-01"
    (root / "sub-01" / "eeg").mkdir(parents=True)
    shutil.copytree(src / "func", root / "sub-01" / "func")
    _to_mff(src / "eeg" / "sub-01_task-rest_eeg.vhdr",
            root / "sub-01" / "eeg" / "sub-01_task-rest_eeg.mff")
    n = TINY.n_channels
    cfg = {"dataset_settings": {"mff": {
        "root": str(root), "subjects": ["sub-01"], "volume_marker": "TREV",
        "keep_channels": [f"E{i + 1}" for i in range(n)]}}}
    ds = get_dataset("mff", cfg)
    rows, problems = inspect_dataset(ds, root)
    assert problems == [] and rows[0]["format"] == "egi" and rows[0]["pairs"] == TINY.n_volumes
    preprocess_subject(ds, root, "sub-01", tmp_path / "out-mff", n_bins=30)
    sim = get_dataset("sim", {"simulation": asdict(TINY)})
    preprocess_subject(sim, tiny_raw, "sub-01", tmp_path / "out-bv", n_bins=30)
    mff, bv = (SubjectFeatures.open(tmp_path / d) for d in ("out-mff", "out-bv"))
    assert mff.meta["first_onset_sample"] == bv.meta["first_onset_sample"]
    np.testing.assert_allclose(mff.eeg, bv.eeg, rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(mff.bold, bv.bold)
