"""The selective scan (S6) of Mamba, with two backends behind one signature.

    h_t = exp(delta_t * A) * h_{t-1} + delta_t * B_t * u_t,    y_t = C_t . h_t + D * u_t

Shapes follow `mamba_ssm.ops.selective_scan_interface.selective_scan_fn`: u, delta, z [b, d, L];
A [d, N]; B, C [b, N, L] or grouped [b, G, N, L] (each group shared by d/G channels); D,
delta_bias [d]. With `delta_softplus`, delta <- softplus(delta + delta_bias); with z, the output
is gated by silu(z).

`selective_scan` uses mamba-ssm's CUDA kernel when it imports and the tensors are on CUDA, and
otherwise a pure-PyTorch scan: one autograd.Function whose backward is a reverse scan, with every
state tensor laid out time-major and contiguous, so that only the two recurrences loop in Python.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

try:  # mamba-ssm fails at import in several ways depending on what is installed
    from mamba_ssm.ops.selective_scan_interface import selective_scan_fn as _cuda_scan
except Exception:  # noqa: BLE001
    _cuda_scan = None


def cuda_kernel_available() -> bool:
    return _cuda_scan is not None and torch.cuda.is_available()


def _expand_groups(x: torch.Tensor, d: int) -> torch.Tensor:
    """[b, N, L] or [b, G, N, L] -> time-major [L, b, d, N]."""
    if x.dim() == 3:
        return x.permute(2, 0, 1).unsqueeze(2).expand(-1, -1, d, -1)
    g = x.shape[1]
    return x.permute(3, 0, 1, 2).repeat_interleave(d // g, dim=2)


def _reduce_groups(grad: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Inverse of `_expand_groups` for gradients: [L, b, d, N] -> the shape of `like`."""
    if like.dim() == 3:
        return grad.sum(2).permute(1, 2, 0)
    b, g, n, length = like.shape
    return grad.reshape(length, b, g, -1, n).sum(3).permute(1, 2, 3, 0)


class _Scan(torch.autograd.Function):
    """y_t = C_t . h_t with h_t = exp(delta_t A) h_{t-1} + delta_t B_t u_t (delta already final)."""

    @staticmethod
    def forward(ctx, u, delta, A, B, C):  # noqa: N803 - the paper's names
        d = u.shape[1]
        ut = u.permute(2, 0, 1)  # [L, b, d]
        dt = delta.permute(2, 0, 1)
        bt, ct = _expand_groups(B, d), _expand_groups(C, d)  # [L, b, d, N]
        decay = torch.exp(dt.unsqueeze(-1) * A)  # [L, b, d, N]
        drive = (dt * ut).unsqueeze(-1) * bt
        h = torch.empty_like(drive)
        state = torch.zeros_like(drive[0])
        for t in range(h.shape[0]):
            state = decay[t] * state + drive[t]
            h[t] = state
        y = (h * ct).sum(-1)  # [L, b, d]
        ctx.save_for_backward(u, delta, A, B, C, h, decay)
        return y.permute(1, 2, 0).contiguous()

    @staticmethod
    def backward(ctx, gy):
        u, delta, A, B, C, h, decay = ctx.saved_tensors  # noqa: N806
        d = u.shape[1]
        ut, dt = u.permute(2, 0, 1), delta.permute(2, 0, 1)
        bt, ct = _expand_groups(B, d), _expand_groups(C, d)
        gyt = gy.permute(2, 0, 1).unsqueeze(-1)  # [L, b, d, 1]
        gC = _reduce_groups(gyt * h, C)  # noqa: N806
        direct = gyt * ct  # dL/dh_t from y_t
        gh = torch.empty_like(h)
        carry = torch.zeros_like(h[0])
        for t in range(h.shape[0] - 1, -1, -1):
            carry = direct[t] + carry
            gh[t] = carry
            carry = decay[t] * carry  # flows to h_{t-1} through h_t = decay_t h_{t-1} + ...
        h_prev = torch.cat([torch.zeros_like(h[:1]), h[:-1]])
        g_decay = gh * h_prev * decay  # dL/d(delta_t A), elementwise
        gA = (g_decay * dt.unsqueeze(-1)).sum((0, 1))  # noqa: N806
        g_dt = (g_decay * A).sum(-1) + (gh * bt).sum(-1) * ut
        g_ut = (gh * bt).sum(-1) * dt
        gB = _reduce_groups(gh * (dt * ut).unsqueeze(-1), B)  # noqa: N806
        return (g_ut.permute(1, 2, 0), g_dt.permute(1, 2, 0), gA, gB, gC)


def selective_scan_torch(u, delta, A, B, C, D=None, z=None, delta_bias=None,  # noqa: N803
                         delta_softplus=False):
    """Pure-PyTorch selective scan, same signature and semantics as mamba-ssm's kernel."""
    dtype = u.dtype
    if delta_bias is not None:
        delta = delta + delta_bias[:, None]
    if delta_softplus:
        delta = F.softplus(delta)
    y = _Scan.apply(u.contiguous(), delta.contiguous(), A.contiguous(), B.contiguous(),
                    C.contiguous())
    if D is not None:
        y = y + D[:, None] * u
    if z is not None:
        y = y * F.silu(z)
    return y.to(dtype)


def selective_scan(u, delta, A, B, C, D=None, z=None, delta_bias=None,  # noqa: N803
                   delta_softplus=False):
    """mamba-ssm's kernel on CUDA when available, else the pure-PyTorch scan."""
    if _cuda_scan is not None and u.is_cuda:
        return _cuda_scan(u, delta, A, B, C, D, z, delta_bias, delta_softplus)
    return selective_scan_torch(u, delta, A, B, C, D, z, delta_bias, delta_softplus)


def selective_scan_reference(u, delta, A, B, C, D=None, z=None, delta_bias=None,  # noqa: N803
                             delta_softplus=False):
    """Step-by-step definition (autograd through a Python loop): slow, for tests only."""
    if delta_bias is not None:
        delta = delta + delta_bias[:, None]
    if delta_softplus:
        delta = F.softplus(delta)
    b, d, length = u.shape
    if B.dim() == 3:
        B, C = B.unsqueeze(1), C.unsqueeze(1)  # noqa: N806
    g = B.shape[1]
    Bx = B.repeat_interleave(d // g, dim=1)  # [b, d, N, L]  # noqa: N806
    Cx = C.repeat_interleave(d // g, dim=1)  # noqa: N806
    state = u.new_zeros(b, d, A.shape[1])
    ys = []
    for t in range(length):
        state = torch.exp(delta[:, :, t, None] * A) * state \
            + (delta[:, :, t] * u[:, :, t])[..., None] * Bx[..., t]
        ys.append((state * Cx[..., t]).sum(-1))
    y = torch.stack(ys, dim=-1)
    if D is not None:
        y = y + D[:, None] * u
    if z is not None:
        y = y * F.silu(z)
    return y
