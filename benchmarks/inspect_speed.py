"""`eeg2fmri inspect` on a 30-subject declared BIDS dataset: wall time (it reads headers only).

Each subject: BrainVision EEG, 64 channels (63 EEG + ECG) at 1 kHz, 300 volume markers (TR 2 s,
EEG starting 7 s early), and a 64x64x32x300 NIfTI run. The EEG data files are sparse files of
the full size (the size check and MNE's header reader see a 10-minute recording) and the
BOLD voxels are zeros, so building the dataset is fast; inspect reads neither.

    python benchmarks/inspect_speed.py [--subjects 30]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pybv

from eeg2fmri.data.datasets import get_dataset
from eeg2fmri.preprocess.inspect import inspect_dataset

FS, TR, N_VOL, N_CH = 1000.0, 2.0, 300, 64


def build(root: Path, n_subjects: int) -> None:
    names = [f"E{i:02d}" for i in range(N_CH - 1)] + ["ECG"]
    n = int((7 + N_VOL * TR + 5) * FS)
    zeros = np.zeros((*((64, 64, 32)), N_VOL), dtype=np.int16)
    for i in range(n_subjects):
        sub = f"sub-{i + 1:02d}"
        eeg, func = root / sub / "eeg", root / sub / "func"
        func.mkdir(parents=True)
        pybv.write_brainvision(
            data=np.zeros((N_CH, 10)), sfreq=FS, ch_names=names, folder_out=eeg,
            fname_base=f"{sub}_task-rest_eeg", fmt="binary_float32",
            events=[{"onset": int(7 * FS + k * TR * FS), "description": 128,
                     "type": "Response"} for k in range(N_VOL) if 7 * FS + k * TR * FS < 10])
        # the full-length recording: markers in the .vmrk, a sparse data file of the right size
        vmrk = eeg / f"{sub}_task-rest_eeg.vmrk"
        lines = vmrk.read_text().splitlines()
        lines += [f"Mk{k + 2}=Response,R128,{int(7 * FS + k * TR * FS) + 1},1,0"
                  for k in range(N_VOL)]
        vmrk.write_text("\n".join(lines) + "\n")
        with open(eeg / f"{sub}_task-rest_eeg.eeg", "wb") as f:
            f.truncate(n * N_CH * 4)
        img = nib.Nifti1Image(zeros, np.diag([3.0, 3.0, 4.0, 1.0]))
        img.header.set_zooms((3.0, 3.0, 4.0, TR))
        nib.save(img, func / f"{sub}_task-rest_bold.nii.gz")
        (func / f"{sub}_task-rest_bold.json").write_text(json.dumps({"RepetitionTime": TR}))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--subjects", type=int, default=30)
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        build(root, a.subjects)
        cfg = {"dataset_settings": {"big": {"root": str(root), "volume_marker": "R128",
                                            "drop_channels": ["ECG"]}}}
        t0 = time.perf_counter()
        ds = get_dataset("big", cfg)
        rows, problems = inspect_dataset(ds, root)
        wall = time.perf_counter() - t0
    assert len(rows) == a.subjects and not problems, problems[:3]
    assert all(r["pairs"] == N_VOL for r in rows)
    print("| subjects | runs | markers per run | wall (s) | per subject (ms) |")
    print("|---|---|---|---|---|")
    print(f"| {a.subjects} | {len(rows)} | {N_VOL} | {wall:.2f} | "
          f"{1000 * wall / a.subjects:.0f} |")


if __name__ == "__main__":
    main()
