"""The Snakemake workflow: lint, dry runs of the default DAG and of partial targets, config
validation, and a tiny end-to-end run that produces the table and figures."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from eeg2fmri.store import STORE_FILES

from .conftest import REPO, tool_env

SNAKEMAKE = [sys.executable, "-m", "snakemake"]
TINY_CONFIG = {
    "simulation": {"n_subjects": 3, "n_volumes": 36, "n_channels": 6, "grid": [16, 16, 8],
                   "voxel_mm": [12.0, 12.0, 16.0], "seed": 1},
    "features": {"n_bins": 40, "context": 4},
    "training": {"epochs": 2, "batch_size": 8, "warmup_steps": 2},
    "model_settings": {"e2fnet": {"arch": "e2fnet", "width": 8}},
}


def run(workdir: Path, *args: str, config: dict | None = None, timeout: int = 600,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    cmd = [*SNAKEMAKE, "-s", str(REPO / "Snakefile"), "-d", str(workdir), *args]
    if config is not None:
        path = workdir / "test-config.yaml"
        path.write_text(yaml.safe_dump(config))
        cmd += ["--configfile", str(path)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                          env=env or tool_env())


def jobs(out: str) -> dict[str, int]:
    """The 'Job stats' table of a dry run: rule -> count."""
    table = out.split("Job stats:")[1].split("total")[0]
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M)}


def scheduled(out: str, rule: str, field: str = "output") -> list[list[str]]:
    """For each scheduled job of `rule`, its input or output files."""
    found, current = [], None
    for line in out.splitlines():
        if line.startswith("rule "):
            current = line[5:].rstrip(":")
        elif current == rule and line.startswith(f"    {field}: "):
            found.append(line.split(": ", 1)[1].split(", "))
    return found


@pytest.mark.workflow
def test_lint_is_clean(tmp_path):
    r = run(tmp_path, "--lint")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Lints for" not in r.stdout + r.stderr


@pytest.mark.workflow
def test_dry_run_of_the_default_dag(tmp_path):
    r = run(tmp_path, "-n", "--cores", "2")
    assert r.returncode == 0, r.stderr
    assert jobs(r.stdout) == {"simulate": 1, "preprocess": 6, "train": 36, "evaluate": 36,
                              "ceiling": 6, "aggregate": 1, "all": 1}
    [outputs] = scheduled(r.stdout, "aggregate")
    assert "results/sim/summary/tasks.csv" in outputs
    assert "results/sim/summary/tasks.png" in outputs  # neural frames: a sequence model


@pytest.mark.workflow
def test_only_a_sequence_model_adds_the_task_figure(tmp_path):
    r = run(tmp_path, "-n", "--cores", "2", "--config",
            "models=[e2fnet,band_ridge,mean_volume,shuffled_eeg]")
    assert r.returncode == 0, r.stderr
    assert jobs(r.stdout)["train"] == 24
    [outputs] = scheduled(r.stdout, "aggregate")
    assert "results/sim/summary/tasks.csv" in outputs
    assert "results/sim/summary/tasks.png" not in outputs


@pytest.mark.workflow
def test_one_fold_target_schedules_only_that_fold(tmp_path):
    r = run(tmp_path, "-n", "--cores", "2", "results/sim/e2fnet/fold-sub-03/metrics.json")
    assert r.returncode == 0, r.stderr
    assert jobs(r.stdout) == {"simulate": 1, "preprocess": 6, "train": 1, "evaluate": 1}
    [train_out] = scheduled(r.stdout, "train")
    assert train_out[0] == "results/sim/e2fnet/fold-sub-03/model.pt"
    # by construction, the train job is not even given the test subject's features
    [train_in] = scheduled(r.stdout, "train", "input")
    features = [f for f in train_in if f.startswith("data/features/")]
    assert len(features) == 5 * len(STORE_FILES) and not [f for f in features if "sub-03" in f]


@pytest.mark.workflow
def test_only_a_test_selected_model_reads_the_test_features(tmp_path):
    config = {"models": ["e2fnet", "e2fnet_ts", "band_ridge", "mean_volume", "shuffled_eeg",
                         "neural_frames", "neural_frames_shuffled"],
              "model_settings": {"e2fnet_ts": {"same_as": "e2fnet", "selection": "test"}}}
    r = run(tmp_path, "-n", "--cores", "2", config=config)
    assert r.returncode == 0, r.stderr
    seen = 0
    for inputs, outputs in zip(scheduled(r.stdout, "train", "input"),
                               scheduled(r.stdout, "train"), strict=True):
        model, fold = outputs[0].split("/")[2:4]
        test = fold.removeprefix("fold-")
        reads_test = any(f"/{test}/" in f for f in inputs)
        assert reads_test == (model == "e2fnet_ts"), (model, fold)
        seen += 1
    assert seen == 7 * 6


@pytest.mark.workflow
def test_seeds_give_one_job_per_model_fold_and_seed(tmp_path):
    r = run(tmp_path, "-n", "--cores", "2", config={"seeds": [0, 1, 2]})
    assert r.returncode == 0, r.stderr
    counts = jobs(r.stdout)
    assert counts["train_seeded"] == counts["evaluate_seeded"] == 6 * 6 * 3
    assert "train" not in counts
    outputs = {o[0] for o in scheduled(r.stdout, "evaluate_seeded")}
    assert "results/sim/e2fnet/seed-2/fold-sub-03/metrics.json" in outputs
    # one seed keeps today's paths (and sets the seed)
    r = run(tmp_path, "-n", "--cores", "2", "-p", "results/sim/e2fnet/fold-sub-03/metrics.json",
            config={"seeds": [7]})
    assert r.returncode == 0, r.stderr
    assert jobs(r.stdout)["train"] == 1 and '"seed": 7' in r.stdout


@pytest.mark.workflow
def test_config_folds_restricts_the_folds(tmp_path):
    r = run(tmp_path, "-n", "--cores", "2", "--config", "folds=[sub-02,sub-05]")
    assert r.returncode == 0, r.stderr
    counts = jobs(r.stdout)
    assert counts["train"] == 12 and counts["evaluate"] == 12
    assert {o[0].split("/")[3] for o in scheduled(r.stdout, "evaluate")} == {
        "fold-sub-02", "fold-sub-05"}


@pytest.mark.workflow
def test_one_model_across_folds(tmp_path):
    r = run(tmp_path, "-n", "--cores", "2", "--config", "models=[band_ridge]", "datasets=[sim]")
    assert r.returncode == 0, r.stderr
    assert jobs(r.stdout)["train"] == 6
    assert {o[0].split("/")[2] for o in scheduled(r.stdout, "train")} == {"band_ridge"}


@pytest.mark.workflow
@pytest.mark.parametrize("bad,needle", [
    ({"trainig": {}}, "config key 'trainig' is not a known setting"),
    ({"training": {"epochs": 0}}, "config key 'training.epochs': 0 is less than the minimum"),
    ({"features": {"eeg_norm": "zscore"}}, "config key 'features.eeg_norm'"),
    ({"datasets": ["nope"]}, "config key 'datasets.0'"),
    ({"model_settings": {"e2fnet": {"arch": "e2fnet", "width": 12}}},
     "config key 'model_settings.e2fnet.width': 12 is not a multiple of 8"),
])
def test_a_bad_config_key_or_value_stops_the_run_naming_it(tmp_path, bad, needle):
    r = run(tmp_path, "-n", "--cores", "1", config=bad)
    assert r.returncode != 0
    out = r.stdout + r.stderr  # snakemake 9 reports errors on stdout
    assert "invalid configuration" in out and needle in out, out


@pytest.mark.workflow
def test_tiny_end_to_end_run_produces_the_table(tmp_path):
    # as on a workstation with two GPUs: every train/evaluate job leases one of them
    env = tool_env(EEG2FMRI_GPUS="0,1", EEG2FMRI_GPU_LOCK_DIR=str(tmp_path / "gpu-locks"))
    # and fMRI synthesized from one recording's EEG alone with the model of its fold
    eeg = "data/raw/sim/sub-02/eeg/sub-02_task-rest_eeg.vhdr"
    config = {**TINY_CONFIG, "synthesize": [{"eeg": eeg, "model": "e2fnet", "fold": "sub-02",
                                             "name": "rec02"}]}
    r = run(tmp_path, "--cores", "2", "--resources", "gpu=2", config=config, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    # a user watching sees each epoch, and the table (with its path) at the end
    out = r.stdout + r.stderr
    assert "e2fnet fold-sub-01 epoch 2/2: train" in out
    assert "results/sim/summary/summary.md:" in out and "| band_ridge" in out
    log = (tmp_path / "results/logs/sim/train/e2fnet/fold-sub-01.log").read_text()
    assert "e2fnet fold-sub-01 epoch 1/2" in log
    for fold in (tmp_path / "results/sim").glob("*/fold-*/metrics.json"):
        m = json.loads(fold.read_text())
        assert m["provenance"]["cuda_visible_devices"] in ("0", "1")
        assert m["train_provenance"]["cuda_visible_devices"] in ("0", "1")
    summary = tmp_path / "results" / "sim" / "summary"
    table = (summary / "summary.md").read_text()
    for name in ("e2fnet", "band_ridge", "mean_volume", "shuffled_eeg", "ceiling"):
        assert name in table
    for fig in ("montage.png", "timecourse.png", "metrics.png", "curves.png",
                "voxel_corr_maps.png"):
        assert (summary / fig).stat().st_size > 1000
    assert (summary / "voxel_corr_e2fnet.nii.gz").is_file()
    assert (summary / "voxel_corr_ceiling.nii.gz").is_file()
    assert (tmp_path / "results/sim/e2fnet/fold-sub-01/predictions.nii.gz").is_file()
    synth = tmp_path / "results/sim/synthesized/rec02.nii.gz"
    pred = tmp_path / "results/sim/e2fnet/fold-sub-02/predictions.nii.gz"
    np.testing.assert_allclose(np.asarray(nib.load(synth).dataobj),
                               np.asarray(nib.load(pred).dataobj), atol=1e-6)
    assert json.loads(synth.with_suffix("").with_suffix(".json").read_text())["fold"] == \
        "fold-sub-02"
    # nothing left to do, and a training-only edit reruns training but not preprocessing
    again = run(tmp_path, "-n", "--cores", "2", config=config)
    assert "Nothing to be done" in again.stdout + again.stderr
    # a user's recording (a file no rule makes): replacing its marker file reruns its synthesis
    own = tmp_path / "own"
    own.mkdir()
    for f in (tmp_path / eeg).parent.glob("sub-02_task-rest_eeg.*"):
        (own / f.name.replace("sub-02_task-rest_eeg", "rec")).write_bytes(f.read_bytes())
    (own / "rec.vhdr").write_text((own / "rec.vhdr").read_text().replace(
        "sub-02_task-rest_eeg.", "rec."))
    mine = {**config, "synthesize": [*config["synthesize"], {
        "eeg": "own/rec.vhdr", "model": "e2fnet", "fold": "sub-02", "name": "own"}]}
    assert run(tmp_path, "--cores", "2", config=mine).returncode == 0
    vmrk = own / "rec.vmrk"
    made = (tmp_path / "results/sim/synthesized/own.nii.gz").stat().st_mtime
    vmrk.write_text(vmrk.read_text() + "; replaced\n")  # another file (Snakemake compares
    os.utime(vmrk, (made + 10,) * 2)  # the contents of small inputs, not only their times)
    assert jobs(run(tmp_path, "-n", "--cores", "2", config=mine).stdout) == {
        "synthesize": 1, "all": 1}
    # a second experiment (another seed and n_bins) sharing this one's data_root, in a fresh
    # working directory: its first job that reads the features refuses them in one line
    other = tmp_path / "other"
    other.mkdir()
    shared = {**TINY_CONFIG, "data_root": str(tmp_path / "data"),
              "simulation": {**TINY_CONFIG["simulation"], "seed": 2},
              "features": {**TINY_CONFIG["features"], "n_bins": 30}}
    r = run(other, "--cores", "1", "results/sim/mean_volume/fold-sub-01/metrics.json",
            config=shared)
    assert r.returncode != 0
    log = (other / "results/logs/sim/train/mean_volume/fold-sub-01.log").read_text()
    assert "features.n_bins 40 (made with) vs 30 (this run's config)" in log
    assert "simulation.seed 1 (made with) vs 2" in log and "data_root" in log
    # and the terminal shows the job's own error line, not only "check log file(s)"
    assert "rule train failed" in r.stderr and "features.n_bins 40 (made with)" in r.stderr
    edited = {**config, "model_settings": {"e2fnet": {"arch": "e2fnet", "width": 16}}}
    r = run(tmp_path, "-n", "--cores", "2", config=edited)
    counts = jobs(r.stdout)
    # e2fnet and its shuffled control (same_as: e2fnet) on 3 folds
    assert counts["train"] == 6 and "preprocess" not in counts and "simulate" not in counts
    report = run(tmp_path, "--report", str(tmp_path / "report.html"), config=config)
    assert report.returncode == 0, report.stderr[-2000:]
    assert (tmp_path / "report.html").stat().st_size > 10_000
    # a store made by another eeg2fmri (another digest of the preprocessing code), reached
    # through a shared data_root where Snakemake's records do not reach: refused too
    meta = tmp_path / "data/features/sim/sub-01/meta.json"
    made = json.loads(meta.read_text())
    made["settings"]["code"] = "0123456789abcdef"
    meta.write_text(json.dumps(made))
    third = tmp_path / "third"
    third.mkdir()
    r = run(third, "--cores", "1", "results/sim/mean_volume/fold-sub-02/metrics.json",
            config={**TINY_CONFIG, "data_root": str(tmp_path / "data")})
    assert r.returncode != 0 and "code 0123456789abcdef (made with) vs" in r.stderr


@pytest.mark.workflow
def test_two_synthesis_entries_writing_one_file_are_refused(tmp_path):
    """s1/rec.vhdr and s2/rec.vhdr would both be rec_e2fnet_fold-sub-01: never one skipped."""
    config = {**TINY_CONFIG, "synthesize": [
        {"eeg": "s1/rec.vhdr", "model": "e2fnet", "fold": "sub-01"},
        {"eeg": "s2/rec.vhdr", "model": "e2fnet", "fold": "sub-01"}]}
    r = run(tmp_path, "-n", "--cores", "1", config=config)
    out = r.stdout + r.stderr
    assert r.returncode != 0 and "entries 0 and 1 would both write" in out
    assert "s1/rec.vhdr and s2/rec.vhdr" in out and "give each a `name`" in out


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


@pytest.mark.workflow
def test_seed_replicates_and_the_papers_protocol_end_to_end(tmp_path):
    config = {**TINY_CONFIG, "seeds": [0, 1], "models": ["e2fnet", "e2fnet_ts", "mean_volume"],
              "model_settings": {**TINY_CONFIG["model_settings"],
                                 "e2fnet_ts": {"same_as": "e2fnet", "selection": "test"}},
              "training": {**TINY_CONFIG["training"], "epochs": 3}}
    r = run(tmp_path, "--cores", "2", config=config)
    assert r.returncode == 0, r.stderr[-3000:]
    results = tmp_path / "results" / "sim"
    for seed in (0, 1):
        honest = results / f"e2fnet/seed-{seed}/fold-sub-02"
        chosen = results / f"e2fnet_ts/seed-{seed}/fold-sub-02"
        # the same training (same seed, same subjects): only the subject epochs are chosen on
        # differs, so the difference between the two is the protocol's inflation alone
        a, b = (np.loadtxt(d / "train_log.csv", delimiter=",", skiprows=1) for d in
                (honest, chosen))
        np.testing.assert_allclose(a[:, 1], b[:, 1], rtol=1e-5)  # train loss per epoch
        m = json.loads((chosen / "metrics.json").read_text())
        assert m["spec"]["selection"] == "test" and m["spec"]["training"]["seed"] == seed
        record = torch.load(chosen / "model.pt", weights_only=False)
        assert record["selected_on"] == ["sub-02"]
        assert record["summary"]["best_epoch"] == int(np.argmin(b[:, 2])) + 1
    seed_runs = {(m.parent.parent.name, m.parent.name)
                 for m in (results / "e2fnet").glob("seed-*/fold-*/metrics.json")}
    assert len(seed_runs) == 2 * 3
    table = (results / "summary" / "summary.md").read_text()
    assert "| seeds |" in table.replace("  ", " ") or "seeds" in table.splitlines()[2]
    assert "voxel corr. seed SD" in table
    assert "e2fnet_ts (test-selected: not an estimate)" in table
    assert "seed-averaged folds" in table
    per_fold = pd.read_csv(results / "summary" / "per_fold.csv")
    assert sorted(per_fold.loc[per_fold["model"] == "e2fnet", "seed"].unique()) == [0, 1]
    summary = pd.read_csv(results / "summary" / "summary.csv", index_col=0)
    folds = per_fold[per_fold["model"] == "e2fnet"].groupby("fold")["ssim"].mean()
    assert summary.loc["e2fnet", "ssim_mean"] == pytest.approx(folds.mean())
    assert summary.loc["e2fnet", "ssim_std"] == pytest.approx(folds.std(ddof=1))
    assert summary.loc["e2fnet", "seeds"] == 2
