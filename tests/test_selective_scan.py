import pytest
import torch

from eeg2fmri.models.selective_scan import (
    cuda_kernel_available,
    selective_scan,
    selective_scan_reference,
    selective_scan_torch,
)


def _inputs(b, d, n, length, groups, dtype, device="cpu", seed=0):
    g = torch.Generator().manual_seed(seed)

    def r(*shape, scale=1.0):
        return (scale * torch.randn(*shape, generator=g, dtype=torch.float64)).to(dtype).to(
            device).requires_grad_(True)

    bc = (b, n, length) if groups == 0 else (b, groups, n, length)
    a_log = torch.log(torch.arange(1, n + 1, dtype=torch.float64)).repeat(d, 1)
    A = (-torch.exp(a_log) * (0.5 + torch.rand(d, n, generator=g, dtype=torch.float64)))  # noqa: N806
    return dict(u=r(b, d, length), delta=r(b, d, length, scale=0.5),
                A=A.to(dtype).to(device).requires_grad_(True), B=r(*bc), C=r(*bc),
                D=r(d), z=r(b, d, length), delta_bias=r(d, scale=0.5), delta_softplus=True)


def _grads(fn, kw):
    y = fn(**kw)
    w = torch.randn(y.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    (y * w.to(y.dtype).to(y.device)).sum().backward()
    names = [k for k, v in kw.items() if isinstance(v, torch.Tensor)]
    out = {"y": y.detach()} | {k: kw[k].grad.clone() for k in names}
    for k in names:
        kw[k].grad = None
    return out


@pytest.mark.parametrize("b,d,n,length,groups", [(2, 4, 3, 7, 0), (1, 8, 16, 33, 4),
                                                 (3, 6, 4, 64, 2)])
@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-5), (torch.float32, 1e-3)])
def test_torch_scan_matches_the_step_by_step_reference(b, d, n, length, groups, dtype, tol):
    kw = _inputs(b, d, n, length, groups, dtype)
    ours = _grads(selective_scan_torch, kw)
    ref64 = _grads(selective_scan_reference, _inputs(b, d, n, length, groups, torch.float64))
    for k, v in ref64.items():
        err = (ours[k].double() - v).norm() / v.norm().clamp_min(1e-12)
        assert err < tol, f"{k}: relative error {err:.2e}"


def test_without_optional_terms():
    kw = _inputs(2, 4, 3, 9, 0, torch.float64)
    for k in ("D", "z", "delta_bias"):
        kw[k] = None
    kw["delta_softplus"] = False
    kw["delta"] = kw["delta"].detach().abs().requires_grad_(True)
    ours, ref = _grads(selective_scan_torch, kw), _grads(selective_scan_reference, kw)
    for k in ref:
        assert torch.allclose(ours[k], ref[k], rtol=1e-9, atol=1e-10), k


@pytest.mark.skipif(not cuda_kernel_available(), reason="needs mamba-ssm and a CUDA GPU")
def test_cuda_kernel_agrees_with_the_torch_scan():
    kw = _inputs(2, 8, 16, 128, 4, torch.float32, device="cuda")
    cuda = _grads(selective_scan, kw)
    torch_ = _grads(selective_scan_torch, kw)
    for k, v in torch_.items():
        err = (cuda[k] - v).norm() / v.norm().clamp_min(1e-12)
        assert err < 1e-3, f"{k}: relative error {err:.2e}"
