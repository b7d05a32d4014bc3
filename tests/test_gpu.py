"""The GPU tier (`pytest -m gpu`): what must hold on CUDA, in a few minutes on one GPU. Where
CUDA is absent every test here is skipped with its reason. Run `eeg2fmri env` first
(docs/running.md: 'Before a GPU or cluster run')."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
import torch

from eeg2fmri.evaluation.predict import evaluate_fold
from eeg2fmri.models import ARCHITECTURES
from eeg2fmri.models.selective_scan import (
    cuda_kernel_available,
    selective_scan,
    selective_scan_torch,
)
from eeg2fmri.training.folds import loso_fold
from eeg2fmri.training.trainer import train_fold

from .conftest import REPO, arch_spec, tool_env

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(),
                                 reason="needs a CUDA GPU: run pytest -m gpu on a GPU machine")]
SUBJECTS = ["sub-01", "sub-02", "sub-03", "sub-04"]
GENERATIVE = {"ef_diffusion"}  # samples noise on the device: CPU and CUDA draws differ


def _volumes(path):
    return np.asarray(nib.load(path).dataobj, dtype=np.float32)


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_the_contract_on_cuda(arch, tiny_features, tmp_path):
    """Train a few steps on CUDA (AMP as the training config says), save the record, load it on
    the CPU and on CUDA: the two predictions agree within 1e-3 (fp32 inference)."""
    record = train_fold(arch_spec(arch, epochs=1), loso_fold(SUBJECTS, "sub-01"), tiny_features,
                        tmp_path, device="cuda", progress=False)
    assert record["summary"]["device"].startswith("cuda")
    for device in ("cpu", "cuda"):
        evaluate_fold(tmp_path / "model.pt", [tiny_features / "sub-01"],
                      tmp_path / f"{device}.json", tmp_path / f"{device}.nii.gz", device=device)
    cpu, cuda = _volumes(tmp_path / "cpu.nii.gz"), _volumes(tmp_path / "cuda.nii.gz")
    assert cpu.shape == cuda.shape and np.isfinite(cuda).all()
    if arch not in GENERATIVE:
        np.testing.assert_allclose(cuda, cpu, atol=1e-3)
    metrics = json.loads((tmp_path / "cuda.json").read_text())
    assert metrics["provenance"]["device"].startswith("cuda")


def _scan_inputs(dtype):
    g = torch.Generator().manual_seed(0)
    b, d, n, length, groups = 2, 16, 16, 256, 4

    def r(*shape, scale=1.0):
        return (scale * torch.randn(*shape, generator=g)).to("cuda", dtype).requires_grad_(True)

    return dict(u=r(b, d, length), delta=r(b, d, length, scale=0.5),
                A=(-torch.rand(d, n, generator=g) - 0.5).to("cuda").requires_grad_(True),
                B=r(b, groups, n, length), C=r(b, groups, n, length), D=r(d),
                z=r(b, d, length), delta_bias=r(d), delta_softplus=True)


@pytest.mark.skipif(not cuda_kernel_available(), reason="mamba-ssm's kernel does not import")
@pytest.mark.parametrize("dtype, tol", [(torch.float32, 1e-3), (torch.bfloat16, 5e-2),
                                        (torch.float16, 2e-2)])
def test_the_mamba_kernel_agrees_with_the_torch_scan(dtype, tol):
    """Forward and backward, in the precisions training uses (AMP: bf16 or fp16)."""
    results = []
    for fn in (selective_scan, selective_scan_torch):
        kw = _scan_inputs(dtype)
        y = fn(**kw)
        y.float().square().sum().backward()
        results.append({"y": y.float(), **{k: v.grad.float() for k, v in kw.items()
                                           if isinstance(v, torch.Tensor) and v.grad is not None}})
    for k, ref in results[1].items():
        err = (results[0][k] - ref).norm() / ref.norm().clamp_min(1e-12)
        assert err < tol, f"{k} ({dtype}): relative error {err:.2e}"


def test_the_tiny_workflow_on_cuda_with_its_gpu_lease(tmp_path):
    """`device: cuda` through Snakemake: every train/evaluate job leases the GPU, and synthesis
    on CUDA equals evaluation."""
    from .test_workflow import TINY_CONFIG, run

    eeg = "data/raw/sim/sub-02/eeg/sub-02_task-rest_eeg.vhdr"
    config = {**TINY_CONFIG, "device": "cuda", "models": ["e2fnet", "mean_volume"],
              "synthesize": [{"eeg": eeg, "model": "e2fnet", "fold": "sub-02", "name": "r"}]}
    env = tool_env(EEG2FMRI_GPUS="0", EEG2FMRI_GPU_LOCK_DIR=str(tmp_path / "locks"))
    r = run(tmp_path, "--cores", "2", "--resources", "gpu=1", config=config, env=env)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    for path in (tmp_path / "results/sim").glob("*/fold-*/metrics.json"):
        assert json.loads(path.read_text())["provenance"]["device"].startswith("cuda")
    np.testing.assert_allclose(_volumes(tmp_path / "results/sim/synthesized/r.nii.gz"),
                               _volumes(tmp_path / "results/sim/e2fnet/fold-sub-02/"
                                                   "predictions.nii.gz"), atol=1e-4)
    assert (REPO / "Snakefile").is_file()
