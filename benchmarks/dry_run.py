"""Workflow overhead: `snakemake -n` of the full paper grid (4 real datasets x every model in
config.yaml x every fold), median wall time of repeated runs.

    python benchmarks/dry_run.py [--repeats 3]

Nothing is downloaded: CN-EPFL's subject list (normally fetched first) comes from a stand-in
participants.tsv. The SLURM executor plugin, when installed, asks `scontrol` for the cluster's
config at start-up; on a machine with the Slurm client but no reachable controller that waits up
to 10 s, so the script also times the run with a `scontrol` that fails at once.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
CNEPFL = [f"sub-{i:02d}" for i in (2, *range(4, 12), *range(13, 20), 21, 22, 24, 26)]


def dry_run(work: Path, config: Path, env: dict[str, str]) -> tuple[float, str]:
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"),
                        "-d", str(work), "-n", "--cores", "2", "--configfile", str(config)],
                       capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    if r.returncode:
        sys.exit(r.stdout + r.stderr)
    return wall, r.stdout


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--repeats", type=int, default=3)
    a = p.parse_args()
    models = list(yaml.safe_load((REPO / "config.yaml").read_text())["model_settings"])
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "cnepfl").mkdir()
        (work / "cnepfl" / "participants.tsv").write_text(
            "participant_id\n" + "\n".join(CNEPFL) + "\n")
        config = work / "grid.yaml"
        config.write_text(yaml.safe_dump({
            "datasets": ["noddi", "oddball", "cnepfl", "xp2"], "models": models,
            "raw_roots": {"cnepfl": str(work / "cnepfl")}}))
        shim = work / "bin"
        shim.mkdir()
        (shim / "scontrol").write_text("#!/bin/sh\nexit 1\n")
        (shim / "scontrol").chmod(0o755)
        bin_dir = str(Path(sys.executable).parent)
        envs = {"as installed": {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"},
                "no Slurm controller probe": {**os.environ,
                                              "PATH": f"{shim}:{bin_dir}:{os.environ['PATH']}"}}
        print(f"| setting | jobs | models | wall s (median of {a.repeats}) |")
        print("|---|---|---|---|")
        for name, env in envs.items():
            runs = [dry_run(work, config, env) for _ in range(a.repeats)]
            total = re.search(r"^total\s+(\d+)$", runs[0][1], re.M)
            print(f"| {name} | {total[1] if total else '?'} | {len(models)} | "
                  f"{statistics.median(w for w, _ in runs):.1f} |")


if __name__ == "__main__":
    main()
