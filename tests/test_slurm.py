"""The workflow on a real (single-node) Slurm cluster through the SLURM profile.

`.ci/run` installs Debian's slurm-wlm and munge and sets EEG2FMRI_REQUIRE_SLURM=1, so there
these tests fail instead of skipping when the cluster cannot be started.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from .conftest import REPO, tool_env
from .slurm_cluster import SlurmCluster, slurm_available
from .test_workflow import TINY_CONFIG

REASON = slurm_available()
if REASON and os.environ.get("EEG2FMRI_REQUIRE_SLURM") == "1":
    raise RuntimeError(f"EEG2FMRI_REQUIRE_SLURM=1 but {REASON}")
pytestmark = [pytest.mark.workflow, pytest.mark.skipif(REASON is not None, reason=str(REASON))]

CONFIG = {**TINY_CONFIG, "models": ["e2fnet", "mean_volume"]}
# What a site sets for its cluster, on top of the profile (this one has no accounting database).
SITE = ["--default-resources", "slurm_partition=test", "mem_mb=500", "runtime=10",
        "--slurm-no-account", "--slurm-status-command", "squeue",
        "--slurm-init-seconds-before-status-checks", "1", "--jobs", "4"]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with SlurmCluster(tmp_path_factory.mktemp("slurm"), cpus=2, mem_mb=16000) as c:
        yield c


def snakemake(cluster: SlurmCluster, workdir: Path, *args: str, timeout: int = 480
              ) -> subprocess.CompletedProcess:
    (workdir / "config.yaml").write_text(yaml.safe_dump(CONFIG))
    env = tool_env(SLURM_CONF=cluster.env["SLURM_CONF"])
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(workdir),
           "--profile", str(REPO / "workflow/profiles/slurm"), "--configfile",
           str(workdir / "config.yaml"), *SITE, *args]
    try:
        r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"snakemake on Slurm hung for {timeout} s:\n{e.stdout}\n{cluster.logs()}")
    return r


def slurm_jobs(cluster: SlurmCluster) -> list[dict[str, str]]:
    """Every job the controller remembers (MinJobAge keeps finished ones), as key=value."""
    out = subprocess.run(["scontrol", "show", "job", "-o"], env=cluster.env, text=True,
                         capture_output=True, check=True).stdout
    return [dict(re.findall(r"(\w+)=(\S+)", line)) for line in out.splitlines() if line]


def test_tiny_workflow_runs_through_sbatch(cluster, tmp_path):
    r = snakemake(cluster, tmp_path)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-4000:] + cluster.logs()
    assert (tmp_path / "results/sim/summary/summary.md").is_file()
    ran = [j for j in slurm_jobs(cluster) if j.get("WorkDir") == str(tmp_path)]
    rules = [j.get("Comment", "") for j in ran]  # the plugin comments each job "rule_<name>..."
    # simulate, 3 preprocess, 6 train, 6 evaluate, 3 ceiling, aggregate
    assert len(ran) == 1 + 3 + 6 + 6 + 3 + 1, rules
    assert all(j["JobState"] == "COMPLETED" for j in ran), rules
    train = [j for j in ran if j.get("Comment", "").startswith("rule_train")]
    # each training job asked for one GPU and its memory; Slurm handed it the (fake) GPU
    assert train and all("gpu" in j.get("TresPerNode", j.get("TresPerJob", ""))
                         for j in train), train[:1]
    metrics = (tmp_path / "results/sim/e2fnet/fold-sub-01/metrics.json").read_text()
    assert '"slurm_job_id": "' in metrics and '"cuda_visible_devices": "0"' in metrics
    assert list((tmp_path / "logs/slurm").rglob("*.log")), "no per-job Slurm logs"


def test_a_failing_job_is_reported_and_retried_with_more_memory(cluster, tmp_path):
    target = "results/sim/mean_volume/fold-sub-01/model.pt"
    r = snakemake(cluster, tmp_path, target)
    assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]
    bold = tmp_path / "data/features/sim/sub-02/bold.npy"
    bold.write_bytes(b"not an array")  # newer than the model: training reruns, and fails
    r = snakemake(cluster, tmp_path, target, "--retries", "1")
    out = r.stdout + r.stderr
    assert r.returncode != 0 and "Error in rule train" in out, out[-4000:]
    log = tmp_path / "results/logs/sim/train/mean_volume/fold-sub-01.log"
    assert f"{bold.relative_to(tmp_path)}: not a readable .npy array" in log.read_text()
    attempts = [j for j in slurm_jobs(cluster)
                if j.get("WorkDir") == str(tmp_path) and j["JobState"] == "FAILED"]
    assert len(attempts) == 2  # the first try and one retry ...
    mems = sorted(int(re.sub(r"\D", "", j["MinMemoryNode"])) for j in attempts)
    assert mems[1] == 2 * mems[0]  # ... with twice the memory
