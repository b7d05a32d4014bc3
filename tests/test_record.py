"""The model record: loadable with weights_only=True, versioned, and crafted files refused
without running anything."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from eeg2fmri.cli import main
from eeg2fmri.errors import InputError
from eeg2fmri.record import VERSION, load_record, save_record
from eeg2fmri.training.folds import loso_fold
from eeg2fmri.training.loop import load_checkpoint
from eeg2fmri.training.trainer import train_fold

from .conftest import tiny_spec


class _Payload:
    """Pickles to a call of os.system: what a crafted model.pt would do on an unsafe load."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _crafted(path: Path, marker: Path) -> Path:
    torch.save({"format": "eeg2fmri-model", "version": VERSION, "state": _Payload(marker)}, path)
    return path


def test_a_crafted_model_file_is_refused_and_runs_nothing(tmp_path, capsys):
    marker = tmp_path / "ran"
    model = _crafted(tmp_path / "model.pt", marker)
    with pytest.raises(InputError, match="refused: not a plain model record"):
        load_record(model)
    code = main(["evaluate", "--model", str(model), "--test-features", str(tmp_path),
                 "--metrics", str(tmp_path / "m.json"), "--predictions", str(tmp_path / "p.nii.gz"),
                 "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 2 and "refused" in err and len(err.strip().splitlines()) == 1
    assert not marker.exists(), "loading the file ran its code"


def test_a_crafted_checkpoint_is_refused_and_runs_nothing(tmp_path):
    marker = tmp_path / "ran"
    ckpt = _crafted(tmp_path / "last.pt", marker)
    with pytest.raises(InputError, match="refused: loading this checkpoint would run code"):
        load_checkpoint(ckpt, torch.device("cpu"))
    assert not marker.exists()


def test_record_round_trip_and_version_check(tiny_features, tmp_path):
    rec = train_fold(tiny_spec("mean_volume"), loso_fold(["sub-01", "sub-02", "sub-03",
                                                          "sub-04"], "sub-01"),
                     tiny_features, tmp_path, progress=False)
    loaded = torch.load(tmp_path / "model.pt", weights_only=True)  # plain values only
    assert loaded["version"] == VERSION and loaded["format"] == "eeg2fmri-model"
    eeg = loaded["eeg"]
    assert eeg["channels"] == rec["eeg"]["channels"] and eeg["fs"] == 250.0
    assert eeg["input"] == "spectra" and eeg["bins"] == [1, 61] and eeg["context"] == 5
    assert isinstance(eeg["norm"]["a"], torch.Tensor) and len(loaded["volume"]["affine"]) == 4
    save_record(tmp_path / "old.pt", {**{k: v for k, v in loaded.items()
                                         if k not in ("version",)}})
    old = torch.load(tmp_path / "old.pt", weights_only=True)
    old["version"] = VERSION + 1
    torch.save(old, tmp_path / "new.pt")
    with pytest.raises(InputError, match=f"model record version {VERSION + 1} .* is not the "
                                         f"version {VERSION} "):
        load_record(tmp_path / "new.pt")


@pytest.fixture(scope="module")
def tiny_record(tiny_features, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("record")
    train_fold(tiny_spec("e2fnet", epochs=1), loso_fold(["sub-01", "sub-02", "sub-03", "sub-04"],
                                                        "sub-01"), tiny_features, out,
               progress=False)
    return out / "model.pt"


def _edited(tmp_path, trained_record, edit, *, keep_digest=True):
    record = torch.load(trained_record, weights_only=True)
    edit(record)
    if not keep_digest:
        record.pop("digest", None)
    path = tmp_path / "edited.pt"
    torch.save(record, path)
    return path


@pytest.mark.parametrize("edit, keep_digest, message", [
    (lambda r: r["state"][next(iter(r["state"]))].fill_(float("nan")), True,
     "changed after training"),
    (lambda r: r["volume"].update(shape=[4, 4, 4]), True, "changed after training"),
    (lambda r: r["state"][next(iter(r["state"]))].fill_(float("nan")), False, "holds NaN/inf"),
    (lambda r: r["eeg"]["norm"].update(a=torch.full_like(torch.as_tensor(r["eeg"]["norm"]["a"],
                                                                          dtype=torch.float32),
                                                         float("inf"))), False,
     "eeg.norm.a holds NaN/inf"),
    (lambda r: r.pop("volume"), False, "lacks 'volume'"),
    (lambda r: r["eeg"].pop("channels"), False, r"'eeg' lacks \['channels'\]"),
    (lambda r: r.update(arch="e3fnet"), False, "unknown architecture 'e3fnet'"),
    (lambda r: r["params"].update(width=16), False, "weights do not fit its settings"),
    (lambda r: r["eeg"].update(channels=r["eeg"]["channels"][:-1]), False,
     "eeg.norm was fitted on 8 channels but eeg.channels lists 7"),
    (lambda r: r.update(version="1"), False, "version '1' .* is not the version 1"),
])
def test_an_edited_or_broken_record_is_refused_in_one_line(tmp_path, tiny_record, edit,
                                                           keep_digest, message):
    from eeg2fmri.record import load_model

    path = _edited(tmp_path, tiny_record, edit, keep_digest=keep_digest)
    with pytest.raises(InputError, match=message):
        load_model(path, torch.device("cpu"))
