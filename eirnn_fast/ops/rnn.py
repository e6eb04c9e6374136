"""Fused Dale's-law E-I rate-RNN recurrence: validation around the registered ops ``torch.ops.eirnn_fast.*``."""

from __future__ import annotations

from typing import Union

import numpy as np
import torch

from eirnn_fast.ops import _backend, _library
from eirnn_fast.ops._autograd import first_order_only
from eirnn_fast.reference.rnn import ei_rnn_rates_reference, ei_rnn_scan_reference

#: Largest N the CUDA kernel takes (W and the state tile live in shared memory or L1/L2);
#: larger networks run the reference on the GPU with a warning (decided in ``ops/_backend.py``).
CUDA_MAX_UNITS = _backend.CUDA_MAX_UNITS


def _tensor(name: str, value) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    return value


def _validate(drive, x0, w_rec, alpha):
    drive = _tensor("drive", drive)
    x0 = _tensor("x0", x0)
    w_rec = _tensor("w_rec", w_rec)
    if not isinstance(alpha, torch.Tensor):
        if isinstance(alpha, (int, float)) and not isinstance(alpha, bool):
            alpha = torch.tensor(float(alpha), dtype=drive.dtype, device=drive.device)
        else:
            raise TypeError(f"alpha must be a torch.Tensor or a float, got {type(alpha).__name__}")
    if drive.dim() != 3:
        raise ValueError(f"drive must be [B, T, N], got shape {tuple(drive.shape)}")
    batch, steps, n = drive.shape
    if batch == 0 or steps == 0 or n == 0:
        raise ValueError(f"drive must have B, T, N >= 1, got shape {tuple(drive.shape)}")
    if drive.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"drive must be float32 or float64, got {drive.dtype}")
    for name, t in (("x0", x0), ("w_rec", w_rec), ("alpha", alpha)):
        if t.dtype != drive.dtype:
            raise TypeError(f"{name} has dtype {t.dtype} but drive has {drive.dtype}; all inputs must share one dtype")
        if t.device != drive.device:
            raise ValueError(
                f"{name} is on {t.device} but drive is on {drive.device}; all inputs must share one device"
            )
    if x0.shape not in ((n,), (batch, n)):
        raise ValueError(f"x0 must be [N] or [B, N] = [{n}] or [{batch}, {n}], got shape {tuple(x0.shape)}")
    if w_rec.shape != (n, n):
        raise ValueError(f"w_rec must be [N, N] = [{n}, {n}], got shape {tuple(w_rec.shape)}")
    if alpha.shape not in ((), (1,), (n,)):
        raise ValueError(f"alpha must be a scalar, [1] or [N] = [{n}], got shape {tuple(alpha.shape)}")
    return drive, x0, w_rec, alpha


def ei_rnn_scan(
    drive: torch.Tensor,  # [B, T, N]
    x0: torch.Tensor,  # [B, N] or [N]
    w_rec: torch.Tensor,  # [N, N]
    alpha: Union[torch.Tensor, float],  # [N], [1] or scalar
    *,
    backend: str = "auto",
) -> torch.Tensor:  # [B, T, N]
    r"""Run the whole E-I rate recurrence in one fused kernel (forward and BPTT).

    .. math::

        x_{-1} = x_0, \qquad
        x_t = (1 - \alpha) \odot x_{t-1} + \alpha \odot (\mathrm{softplus}(x_{t-1})\, W^\top) + d_t,
        \quad t = 0, \dots, T-1

    Args:
        drive: ``[B, T, N]`` per-step drive (input projection and noise already folded in).
        x0: ``[B, N]`` or ``[N]`` state before the first step (``x_{-1}``).
        w_rec: ``[N, N]`` effective recurrent matrix (Dale's law, zero diagonal, low rank already
            applied: the op is generic).
        alpha: ``[N]`` per-unit or scalar leak ``dt / tau`` (dimensionless).
        backend: ``"auto"`` (fused when compiled for the device, else reference), ``"fused"``
            (raise if unavailable) or ``"reference"`` (eager PyTorch loop).

    Returns:
        ``[B, T, N]`` states ``x_0 .. x_{T-1}`` (same dtype and device as ``drive``).

    Gradients are exact w.r.t. every tensor input. ``softplus`` follows ``torch.nn.functional.softplus``
    (``beta=1``, linear above ``threshold=20``), so fused and reference agree to rounding.
    The backward keeps no per-step tape: it reuses the returned states (which autograd keeps anyway)
    and allocates one ``[B, T, N]`` gradient for ``drive``; the extra memory is O(B*N + N^2).
    On CUDA the parameter gradients are reduced after the reverse loop with one GEMM over
    ``B*T`` rows (one extra ``[B, T, N]`` temporary). float32 and float64 on both devices;
    CUDA handles N <= ``CUDA_MAX_UNITS`` and falls back to the reference above that with a warning.
    Non-finite inputs are not rejected (checking would cost a device sync): NaN/inf propagate to
    the outputs and gradients exactly as in the reference.
    """
    drive, x0, w_rec, alpha = _validate(drive, x0, w_rec, alpha)
    fused = _backend.choose("ei_rnn_scan", backend, drive.device, n_units=drive.shape[2]) == "fused"
    n = drive.shape[2]
    if not fused:
        return ei_rnn_scan_reference(drive, x0, w_rec, alpha)
    batch = drive.shape[0]
    x0_b = x0.expand(batch, n).contiguous()
    alpha_n = alpha.reshape(-1).expand(n).contiguous()
    return _library.op("ei_rnn_scan_fwd")(drive.contiguous(), x0_b, w_rec.contiguous(), alpha_n)


# ---------------------------------------------------------------------------- around the scan
def ei_rnn_rates(
    states: torch.Tensor,  # [B, T, N]
    x0: torch.Tensor,  # [B, N] or [N]
    rate_scale: torch.Tensor,  # 0-d (or one element)
    rate_baseline: torch.Tensor,  # 0-d (or one element)
    *,
    backend: str = "auto",
) -> torch.Tensor:  # [B, T, N]
    r"""Output rates of the drop-in model from the scan's states, in one fused pass each way.

    .. math::

        r_t = \max(\mathrm{softplus}(x_{t-1})\, s + b,\ 0), \qquad x_{-1} = x_0

    (the one-step lag of the predecessor: ``rates_0`` comes from ``x0``, the last state reaches no
    rate). Exact gradients w.r.t. ``states``, ``x0``, ``rate_scale`` and ``rate_baseline``; the
    clamp passes the gradient where ``softplus * s + b >= 0`` (torch's ``clamp`` rule). NaN
    propagates as in the reference. Fused kernel: CPU (rows in parallel, the scalar gradients
    reduced in a fixed order, so bitwise identical for any thread count); on CUDA, or with
    ``backend="reference"``, :func:`eirnn_fast.reference.ei_rnn_rates_reference` (a few
    elementwise launches there).
    """
    for name, t in (("states", states), ("x0", x0), ("rate_scale", rate_scale), ("rate_baseline", rate_baseline)):
        _tensor(name, t)
    if states.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"states must be float32 or float64, got {states.dtype}")
    if states.dim() != 3 or min(states.shape) < 1:
        raise ValueError(f"states must be [B, T, N] with B, T, N >= 1, got shape {tuple(states.shape)}")
    batch, _, n = states.shape
    if x0.shape not in ((n,), (batch, n)):
        raise ValueError(f"x0 must be [N] or [B, N] = [{n}] or [{batch}, {n}], got shape {tuple(x0.shape)}")
    for name, t in (("rate_scale", rate_scale), ("rate_baseline", rate_baseline)):
        if t.numel() != 1:
            raise ValueError(f"{name} must hold one value, got shape {tuple(t.shape)}")
    for name, t in (("x0", x0), ("rate_scale", rate_scale), ("rate_baseline", rate_baseline)):
        if t.dtype != states.dtype or t.device != states.device:
            raise TypeError(f"{name} is {t.dtype} on {t.device} but states are {states.dtype} on {states.device}")
    if _backend.choose("ei_rnn_rates", backend, states.device) != "fused":
        return ei_rnn_rates_reference(states, x0, rate_scale, rate_baseline)
    return _library.op("ei_rates_fwd")(states.contiguous(), x0.expand(batch, n).contiguous(), rate_scale, rate_baseline)


class _StateNoise(torch.autograd.Function):
    """In place ``drive += std * xi``; the backward regenerates ``xi`` from the seed for ``d std``."""

    @staticmethod
    def forward(ctx, drive, std, seed):
        _library.op("noise_add_")(drive, std, seed)
        ctx.mark_dirty(drive)
        ctx.seed = seed
        ctx.std_shape = std.shape
        return drive

    @staticmethod
    @first_order_only("state_noise_")
    def backward(ctx, grad):
        d_std = None
        if ctx.needs_input_grad[1]:
            d_std = _library.op("noise_dot")(grad.contiguous(), ctx.seed).reshape(ctx.std_shape)
        return grad, d_std, None


def _check_seed(seed) -> int:
    """An int in [0, 2**63) (numpy ints and 0-d integer tensors accepted): pybind's "incompatible
    function arguments" / "Overflow when unpacking long long" named neither seed nor the range."""
    if isinstance(seed, torch.Tensor) and seed.dim() == 0 and not seed.is_floating_point() and seed.dtype != torch.bool:
        seed = int(seed)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an int in [0, 2**63 - 1] or None, got {type(seed).__name__} {seed!r}")
    if not 0 <= seed < 2**63:
        raise ValueError(f"seed must be an int in [0, 2**63 - 1] or None, got {seed}")
    return int(seed)


def state_noise_(
    drive: torch.Tensor,  # [B, T, N] (any shape), contiguous
    std: torch.Tensor,  # 0-d
    *,
    seed: int | None = None,
    backend: str = "auto",
) -> torch.Tensor:
    r"""Add ``std * xi`` to ``drive`` in place, ``xi ~ N(0, 1)`` i.i.d. (the model's state noise).

    Fused (CPU): counter-based draws (``csrc/common/normal_rng.h``): draw ``i`` is a pure function
    of ``(seed, i)``, so nothing is stored for the backward, which regenerates the draws to form
    ``d std = sum(grad * xi)``; ~3x faster than ``torch.randn`` and identical for any thread count.
    ``seed`` defaults to one draw from torch's default generator, so ``torch.manual_seed`` makes
    the noise reproducible. Reference (and CUDA): ``drive += std * torch.randn(...)`` in place (a
    different stream of the same distribution, from a generator seeded with ``seed``); the
    out-of-place twin is :func:`eirnn_fast.reference.state_noise_reference`. ``seed``: None or an
    int in ``[0, 2**63 - 1]``. Meta tensors: shape only (``drive`` is returned, no draws).
    """
    _tensor("drive", drive)
    _tensor("std", std)
    if std.numel() != 1:
        raise ValueError(f"std must hold one value, got shape {tuple(std.shape)}")
    if drive.dtype not in (torch.float32, torch.float64) or std.dtype != drive.dtype:
        raise TypeError(f"drive and std must share a float32/float64 dtype, got {drive.dtype} and {std.dtype}")
    if std.device != drive.device:
        raise ValueError(f"std is on {std.device} but drive is on {drive.device}; both must share one device")
    if any(st == 0 and n > 1 for st, n in zip(drive.stride(), drive.shape)):
        raise ValueError(
            f"drive is an expanded view (strides {drive.stride()} for shape {tuple(drive.shape)}): state_noise_ adds "
            "in place, so every element needs its own memory; pass drive.clone()"
        )
    if seed is None:
        seed = int(torch.randint(0, 2**62, (1,)).item())
    else:
        seed = _check_seed(seed)
    path = _backend.choose("state_noise_", backend, drive.device, contiguous=drive.is_contiguous())
    if path == "meta":  # shape-only: no values to draw into
        return drive.addcmul_(torch.empty_like(drive), std)
    if path == "reference":
        gen = torch.Generator(device=drive.device).manual_seed(seed)
        xi = torch.randn(drive.shape, dtype=drive.dtype, device=drive.device, generator=gen)
        return drive.addcmul_(xi, std)  # in place, like the fused path
    return _StateNoise.apply(drive, std, seed)
