"""Synthesize fMRI volumes from an EEG-only recording with a trained model (`model.pt`).

The recording goes through preprocessing's ingestion path (`preprocess.ingest`), replayed from
the settings in the model record: channels matched to the model's montage by name
(case-insensitive, reordered; extra channels dropped; a missing or ambiguous one is an error), a
recording at the rate the training recordings had (the model's rate x the `decimate` factor its
preprocessing applied) decimated as preprocessing did; any other rate is resampled whole with
MNE first; windows of fs*TR samples start at the recording's volume markers (an error if the
marker asked for is missing), or every TR from `start` with `--marker none`. Volume t is
predicted from the `context` windows before it, exactly as in training and evaluation; the
first `context` windows have no full context and give no volume. Windows are read, transformed
and predicted in chunks, so long recordings run in bounded memory.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from eeg2fmri import __version__
from eeg2fmri.data.download import recording_sha256
from eeg2fmri.data.formats import FORMATS, format_by_extension, reader
from eeg2fmri.data.formats.base import match_markers
from eeg2fmri.device import pick_device
from eeg2fmri.errors import InputError
from eeg2fmri.io import save_nifti, write_json
from eeg2fmri.models.base import SequenceBatch
from eeg2fmri.pairs import EEGNorm
from eeg2fmri.preprocess.fmri import from_volumes
from eeg2fmri.preprocess.ingest import (
    Ingestion,
    Recording,
    Stages,
    match_channels,
    open_recording,
    windows,
)
from eeg2fmri.preprocess.mr_artefacts import GRADIENT_DB, find_ecg
from eeg2fmri.preprocess.pairing import irregular_intervals
from eeg2fmri.record import load_model


@dataclass
class Windows:
    """The recording's normalised EEG windows [N, C, F] and where they start."""

    features: np.ndarray
    onsets_s: np.ndarray  # seconds from the recording's start
    source: str  # "markers 'R128'" or "every TR from 0 s"
    channels_dropped: list[str]
    resampled_from: float | None
    amplitude_uv: float  # median SD of a window's channel (eeg.amplitude_uv)
    mr_artefacts: dict[str, Any]  # what the MR stages measured and did


def _onsets(markers: dict[str, np.ndarray], marker: str | None, fs: float, tr: float,
            n_samples: int, n_win: int, start: float, path: Path) -> tuple[np.ndarray, str]:
    """Window onsets (samples at the recording's rate) with a complete window."""
    found = np.zeros(0, np.int64)
    if marker:
        found = match_markers(markers, marker)
        if len(found) < 2:  # asked for and not found: never fall back to a TR grid
            have = ", ".join(f"{k} ({len(v)})" for k, v in sorted(markers.items())[:12])
            raise InputError(path, (
                f"{len(found)} volume marker(s) {marker!r} in the recording (the markers it has: "
                f"{have or 'none'}); pass --marker with the one that marks each volume, or "
                "--marker none (with --start) to window every TR of an EEG-only recording"))
    if len(found) >= 2:
        spv = fs * tr
        off = irregular_intervals(found, spv)
        if len(off):
            raise InputError(path, f"volume markers {marker!r} are not fs*TR = {spv:g} samples "
                                   f"apart ({len(off)} interval(s) differ, the first after "
                                   f"marker {off[0] + 1}); pass --marker none and --start to "
                                   "window every TR instead")
        onsets, source = found, f"markers {marker!r}"
    else:
        if start < 0:
            raise InputError(None, f"--start must be >= 0 s, not {start:g}")
        onsets = np.round((start + np.arange(int(n_samples / (fs * tr)) + 1) * tr) * fs)
        onsets, source = onsets.astype(np.int64), f"every TR from {start:g} s"
    return onsets[(onsets >= 0) & (onsets + n_win <= n_samples)], source


def read_windows(path: Path, record: dict[str, Any], *, start: float = 0.0,
                 marker: str | None = None, fmt: str | None = None,
                 progress: bool = True) -> Windows:
    """The recording's windows as the model reads them (spectra or raw), normalised: the
    ingestion path of preprocessing (`preprocess.ingest`) replayed from the record."""
    eeg = record["eeg"]
    if marker is not None and not marker.strip():  # never read as "no marker": that is none
        raise InputError(None, "--marker is empty: give the volume marker (e.g. R128), or "
                               "'none' to window every TR from --start")
    fmt = fmt or format_by_extension(path)
    if fmt is None or fmt == "mat":
        raise InputError(path, "unknown EEG file type (a .mat matrix states neither its rate nor "
                               f"its channels); pass --format ({', '.join(FORMATS)})")
    ing = Ingestion.from_state(eeg.get("ingestion") or eeg)
    model_fs, tr, n_win = float(eeg["fs"]), float(eeg["tr"]), ing.window_samples
    norm = EEGNorm.from_state(eeg["norm"])
    marker = eeg.get("marker") if marker is None else (None if marker == "none" else marker)
    with open_recording(path, fmt) as rec:
        fs = rec.fs
        picks = match_channels(list(eeg["channels"]), rec.ch_names, path, "the model")
        wanted = {c.lower() for c in eeg["channels"]}
        extra = [c for c in rec.ch_names if c.lower() not in wanted]
        if ing.decimate >= 2 and abs(fs - ing.decimate * model_fs) < 1e-6 * fs:
            pass  # the training recordings' rate: decimated as preprocessing did
        elif fs != model_fs:  # another rate: the whole recording resampled to the model's (MNE)
            rec = _resampled(rec, picks, model_fs)
            ing = Ingestion(ing.window_samples, ing.bins, 1)
        else:
            ing = Ingestion(ing.window_samples, ing.bins, 1)
        markers = {k: ing.output_onsets(v) for k, v in rec.markers.items()}
        onsets, source = _onsets(markers, marker, model_fs, tr, ing.output_length(rec.n_samples),
                                 n_win, start, path)
        if len(onsets) == 0:
            raise InputError(path, f"no complete {n_win}-sample window ({source})")
        stages = _stages(rec, picks, ing, tr, marker, path)
        win = windows(rec, picks, onsets, ing, spectra=eeg["input"] != "raw",
                      raw=eeg["input"] == "raw", progress=progress, read=stages.read,
                      transform=lambda x: norm(x).astype(np.float32))
    features = win.raw if eeg["input"] == "raw" else win.spectra
    return Windows(features, onsets / model_fs, source, extra,
                   None if fs == model_fs else fs, win.amplitude_uv, stages.report)


def _stages(rec: Recording, picks: list[str], ing: Ingestion, tr: float, marker: str | None,
            path: Path) -> Stages:
    """The MR stages of the model's preprocessing, replayed where the recording allows: the
    gradient corrected on its volume markers (a gradient artefact without them is an error), the
    BCG on its ECG channel (an EEG-only recording outside the scanner has neither)."""
    m = ing.mr
    scan = match_markers(rec.markers, marker) if marker else np.zeros(0, np.int64)
    gradient, bcg = m.gradient, m.bcg
    if gradient == "correct" and len(scan) < 3:
        found = Stages.detect(rec, picks, tr, None)[2]  # nan: too short to measure
        if found > GRADIENT_DB:
            raise InputError(path, f"gradient artefact ({found:.1f} dB at the volume harmonics) "
                                   "and no volume markers to correct it on, as the model's "
                                   "preprocessing did: pass --marker with the volume marker")
        gradient = "keep"  # none to correct
    if bcg == "correct" and find_ecg(rec.ch_names, m.ecg_channel) is None:
        bcg = "keep"  # no ECG channel: a recording outside the scanner has no BCG either
    replay = replace(ing, mr=replace(m, gradient=gradient, bcg=bcg))
    return Stages.build(rec, picks, replay, tr, scan if len(scan) >= 3 else None,
                        key="the model's dataset_settings.<dataset>.mr_artefacts")


def _resampled(rec: Recording, picks: list[str], fs: float) -> Recording:
    """The recording's `picks` resampled whole to `fs` with MNE, markers moved with them."""
    import mne

    data = mne.filter.resample(rec.samples(picks), up=fs, down=rec.fs, axis=-1, verbose="error")
    raw = mne.io.RawArray(data, mne.create_info(picks, fs, "eeg", verbose="error"),
                          verbose="error")
    markers = {k: np.round(v * fs / rec.fs).astype(np.int64) for k, v in rec.markers.items()}
    return Recording(rec.path, rec.format, raw, fs, list(picks), markers, data.shape[1])


AMPLITUDE_FACTOR = 10.0  # a recording this many times above or below the training EEG is refused


def check_amplitude(path: Path, record: dict[str, Any], found: float) -> str | None:
    """Refuse EEG whose amplitude is orders of magnitude off the training recordings' (volts
    labelled as microvolts, or the reverse); the comparison in words, for the sidecar."""
    trained = record["eeg"].get("amplitude_uv")
    if trained is None:
        return None
    text = f"{found:.3g} uV (training EEG {trained:.3g} uV)"
    ratio = found / trained if trained > 0 else float("inf")
    if not (1 / AMPLITUDE_FACTOR <= ratio <= AMPLITUDE_FACTOR):
        raise InputError(path, (
            f"EEG amplitude {found:.3g} uV per window and channel (median SD) is {ratio:.3g} "
            f"times the training recordings' {trained:.3g} uV: a unit mismatch (volts written "
            "as microvolts, or the reverse) or another montage/reference? Fix the file's "
            "units; --accept-amplitude synthesizes anyway"))
    return text


@torch.no_grad()
def predict_windows(model: torch.nn.Module, record: dict[str, Any], windows: np.ndarray,
                    device: torch.device, batch_size: int = 16, progress: bool = True
                    ) -> np.ndarray:
    """Volumes [N - context, D, H, W] for windows [N, C, F]: volume t from windows t-context..t-1
    (pair models in batches, as evaluation does; sequence models as one whole run)."""
    context = int(record["eeg"]["context"])
    n = len(windows) - context
    shape = tuple(record["volume"]["shape"])
    if n < 1:
        raise InputError(None, f"{len(windows)} windows give no volume with a full context of "
                               f"{context} windows")
    if record.get("sequence"):
        x = SequenceBatch(torch.from_numpy(windows[None, :-1]),
                          torch.zeros((1, n, *shape)), torch.zeros((1, n), dtype=torch.bool))
        return model(x.to(device)).float().cpu().numpy()[0]
    out = np.empty((n, *shape), dtype=np.float32)
    steps = range(0, n, batch_size)
    for s in tqdm(steps, desc="volumes", unit="batch", leave=False,
                  disable=not (progress and sys.stderr.isatty())):
        t = np.arange(context + s, context + min(n, s + batch_size))
        x = np.stack([windows[u - context:u] for u in t])
        out[s:s + len(t)] = model(torch.from_numpy(x).to(device)).float().cpu().numpy()
    return out


def output_paths(out_path: Path, model_path: Path, eeg_path: Path, fmt: str | None
                 ) -> tuple[Path, Path]:
    """The NIfTI and its sidecar, refused where they would write over an input: the model, the
    recording or a file it needs, or a JSON that is not an earlier synthesis sidecar."""
    out_path = Path(out_path)
    name = out_path.name
    if not name.endswith((".nii", ".nii.gz")):
        raise InputError(out_path, "--out must name a NIfTI file (.nii or .nii.gz)")
    if out_path.is_dir():
        raise InputError(out_path, "--out is a folder; name the NIfTI file to write")
    sidecar = out_path.with_name(name.split(".nii")[0] + ".json")
    inputs = [Path(model_path), Path(eeg_path)]
    fmt = fmt or format_by_extension(Path(eeg_path))
    if fmt in FORMATS and Path(eeg_path).exists():
        try:
            inputs += reader(fmt).companions(Path(eeg_path))
        except (InputError, OSError):
            pass  # reading the recording names its problem
    for out in (out_path, sidecar):
        for given in inputs:
            if out.exists() and given.exists() and out.samefile(given):
                raise InputError(out, f"is an input ({given.name}); synthesis never writes over "
                                      "its inputs: choose another --out")
    if sidecar.is_file():
        try:
            earlier = json.loads(sidecar.read_text())
        except (OSError, ValueError):
            earlier = None
        if not (isinstance(earlier, dict) and {"model_name", "recording_sha256"} <= set(earlier)):
            raise InputError(sidecar, "exists and is not an earlier synthesis sidecar (it would "
                                      "be replaced by the one for this NIfTI): choose another "
                                      "--out")
    return out_path, sidecar


def synthesize(model_path: Path, eeg_path: Path, out_path: Path, *, start: float = 0.0,
               marker: str | None = None, fmt: str | None = None, seed: int | None = None,
               device: str = "auto", progress: bool = True,
               accept_amplitude: bool = False) -> dict[str, Any]:
    """Write `out_path` (4-D NIfTI on the training grid) and its JSON sidecar; returns it. The
    pair is replaced together: a kill leaves both, the NIfTI alone, or neither."""
    t0 = time.time()
    eeg_path = Path(eeg_path)
    out_path, sidecar_path = output_paths(out_path, model_path, eeg_path, fmt)
    dev = pick_device(device)
    model, record = load_model(Path(model_path), dev)
    if seed is not None:
        model.reseed(seed)
    win = read_windows(eeg_path, record, start=start, marker=marker, fmt=fmt, progress=progress)
    try:
        amplitude = check_amplitude(eeg_path, record, win.amplitude_uv)
    except InputError:
        if not accept_amplitude:
            raise
        amplitude = f"{win.amplitude_uv:.3g} uV, accepted with --accept-amplitude"
        print(f"{eeg_path}: warning: EEG amplitude {amplitude}, far from the training EEG's "
              f"{record['eeg']['amplitude_uv']:.3g} uV", file=sys.stderr)
    if win.channels_dropped:
        print(f"{eeg_path}: channels not used by the model dropped: "
              f"{', '.join(win.channels_dropped)}", file=sys.stderr)
    if win.resampled_from:
        print(f"{eeg_path}: resampled from {win.resampled_from:g} Hz to "
              f"{record['eeg']['fs']:g} Hz", file=sys.stderr)
    t_pred = time.time()
    volumes = predict_windows(model, record, win.features, dev, progress=progress)
    pred_s = time.time() - t_pred
    context = int(record["eeg"]["context"])
    print(f"{eeg_path}: {len(win.features)} windows ({win.source}); {len(volumes)} volumes "
          f"written, the first {context} windows left out (no full context)", file=sys.stderr)
    tr = float(record["eeg"]["tr"])
    sidecar_path.unlink(missing_ok=True)  # never a new NIfTI beside the old one's sidecar
    save_nifti(out_path, from_volumes(volumes), np.asarray(record["volume"]["affine"]), tr)
    sidecar = {
        "RepetitionTime": tr, "model": str(model_path), "model_name": record["spec"]["name"],
        "arch": record["arch"], "params": record["params"], "dataset": record.get("dataset"),
        "fold": record["fold"]["name"], "training_subjects": list(record["fold"]["train"]),
        "validation_subject": record["fold"]["val"], "features": record["spec"]["features"],
        "recording": str(eeg_path), "recording_sha256": recording_sha256(Path(eeg_path)),
        "channels": list(record["eeg"]["channels"]), "channels_dropped": win.channels_dropped,
        "resampled_from_hz": win.resampled_from, "fs": record["eeg"]["fs"],
        "windows": win.source, "n_windows": len(win.features), "n_volumes": len(volumes),
        "volumes_left_out": context,
        "volume_onsets_s": [round(float(t), 6) for t in win.onsets_s[context:]],
        "seed": seed, "shuffled_eeg_model": record.get("shuffle_seed") is not None,
        "predict_s_per_volume": pred_s / len(volumes), "wall_s": time.time() - t0,
        "package_version": __version__, "amplitude": amplitude,
        "mr_artefacts": win.mr_artefacts,
    }
    write_json(sidecar_path, sidecar)
    return sidecar
