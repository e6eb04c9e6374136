"""Constraint parameterisations of the E-I RNN: Dale's law, low rank, leak alpha, time constant tau.

Each helper maps unconstrained trainable tensors to the constrained quantities the dynamics use, so
the constraints hold after every optimiser step without projection:

===========================  ========================================================================
quantity                     parameterisation
===========================  ========================================================================
recurrent weight (Dale)      ``W = |W_raw| * sign_mask * diag_mask``  (columns of I units negative,
                             zero diagonal); with ``bypass_dale``: ``W = W_raw * diag_mask``
recurrent weight (low rank)  ``W = |U V^T| * sign_mask * diag_mask``; bypass: ``(U V^T) * diag_mask``
leak alpha = dt / tau        ``alpha = sigmoid(logit)``, in (0, 1)
time constant tau (ms)       ``tau = TAU_MIN + softplus(raw) * (TAU_MAX - TAU_MIN) / 2``, >= TAU_MIN
===========================  ========================================================================

The formulas, constants and inverse maps (including their clipping) are those of the predecessor
research code (``jamespherman/4factors-rnn-analysis@6fa65af:src/model.py``), so checkpoints trained
there hold the same numbers here. Initialisers draw from numpy's global RNG exactly where the
predecessor did, so seeding ``numpy`` and ``torch`` reproduces its initial weights.
"""

from __future__ import annotations

import math
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F

#: Lower bound of the learnable time constant (ms). Equal to the SC data's bin ``dt = 25`` ms so that
#: ``alpha = dt / tau < 1``; the predecessor's first learnable-tau runs used 10 ms and diverged (alpha > 1).
TAU_MIN = 25.0
#: Scale reference of the learnable time constant (ms): ``softplus(raw) = 2`` gives ``tau = TAU_MAX``.
#: It is not an upper bound (softplus is unbounded); the name follows the predecessor.
TAU_MAX = 200.0


# ----------------------------------------------------------------------------------------- masks
def dale_sign_mask(n_exc: int, n_inh: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``[N, N]`` sign of each recurrent weight by presynaptic (column) type: +1 for the first
    ``n_exc`` (excitatory) columns, -1 for the last ``n_inh`` (inhibitory) columns."""
    mask = torch.ones(n_exc + n_inh, n_exc + n_inh, dtype=dtype)
    mask[:, n_exc:] = -1
    return mask


def zero_diagonal_mask(n: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``[N, N]`` mask that removes self-connections: 0 on the diagonal, 1 elsewhere."""
    return 1 - torch.eye(n, dtype=dtype)


# ------------------------------------------------------------------------- recurrent weights
def dale_weight(
    w_raw: torch.Tensor,  # [N, N]
    sign_mask: torch.Tensor,  # [N, N]
    diag_mask: torch.Tensor,  # [N, N]
    bypass_dale: bool = False,
) -> torch.Tensor:  # [N, N]
    """Effective recurrent matrix ``|W_raw| * sign_mask * diag_mask`` (``W_raw * diag_mask`` when
    ``bypass_dale``). Row i holds the inputs of unit i; column j the outputs of unit j."""
    if bypass_dale:
        return w_raw * diag_mask
    return w_raw.abs() * sign_mask * diag_mask


def low_rank_weight(
    u: torch.Tensor,  # [N, r]
    v: torch.Tensor,  # [N, r]
    sign_mask: torch.Tensor,  # [N, N]
    diag_mask: torch.Tensor,  # [N, N]
    bypass_dale: bool = False,
) -> torch.Tensor:  # [N, N]
    """Effective recurrent matrix from rank-r factors: ``|U V^T| * sign_mask * diag_mask``.

    Note the product is rank r but the constrained matrix is not (absolute value and masks act
    elementwise); this is the predecessor's definition.
    """
    return dale_weight(u @ v.t(), sign_mask, diag_mask, bypass_dale)


# ------------------------------------------------------------------------------- alpha / tau
def alpha_from_logit(logit: torch.Tensor) -> torch.Tensor:
    """Leak ``alpha = sigmoid(logit)`` in (0, 1)."""
    return torch.sigmoid(logit)


def alpha_to_logit(alpha: float) -> float:
    """Inverse of :func:`alpha_from_logit` for initialisation; alpha is first clipped to [0.01, 0.99]."""
    alpha = float(np.clip(alpha, 0.01, 0.99))
    return float(np.log(alpha / (1 - alpha)))


def tau_from_raw(raw: torch.Tensor, tau_min: float = TAU_MIN, tau_max: float = TAU_MAX) -> torch.Tensor:
    """Time constant (ms) ``tau = tau_min + softplus(raw) * (tau_max - tau_min) / 2``.

    ``tau > tau_min`` mathematically; in floating point ``tau == tau_min`` once softplus underflows
    (raw < about -30 in float64), so ``alpha = dt / tau <= 1`` when ``dt <= tau_min``.
    """
    return tau_min + F.softplus(raw) * ((tau_max - tau_min) / 2.0)


def tau_to_raw(tau: float, tau_min: float = TAU_MIN, tau_max: float = TAU_MAX) -> float:
    """Approximate inverse of :func:`tau_from_raw` for initialisation.

    ``(tau - tau_min) / scale`` is clipped to [0.01, 10] first, so initial values below
    ``tau_min + 0.01 * scale`` (= 25.875 ms with the defaults) start at that value; the ``+1e-8``
    inside the log matches the predecessor bit for bit.
    """
    scale = (tau_max - tau_min) / 2.0
    x = float(np.clip((tau - tau_min) / scale, 0.01, 10.0))
    return float(np.log(np.exp(x) - 1 + 1e-8))


# ---------------------------------------------------------------------------- initialisers
def _scale_to_radius(w: np.ndarray, spectral_radius: float) -> np.ndarray:
    radius = float(np.max(np.abs(np.linalg.eigvals(w)))) if w.size else 0.0
    if radius > 0:
        w = w * (spectral_radius / radius)
    return w


def init_dale_magnitudes(n_exc: int, n_inh: int, spectral_radius: float = 0.9) -> np.ndarray:
    """``[N, N]`` float64 magnitudes ``|W|`` for a Dale's-law network (numpy's global RNG).

    Gamma(shape 2, scale 0.05) magnitudes, zero diagonal, each row's inhibitory magnitudes rescaled
    so that their sum equals the row's excitatory sum (E/I balance), then the signed matrix is scaled
    to the requested spectral radius.
    """
    n = n_exc + n_inh
    w = np.random.gamma(shape=2, scale=0.05, size=(n, n))
    np.fill_diagonal(w, 0)
    if n_inh > 0:
        e_sum = w[:, :n_exc].sum(axis=1, keepdims=True)
        i_sum = w[:, n_exc:].sum(axis=1, keepdims=True)
        w[:, n_exc:] *= e_sum / (i_sum + 1e-8)
    sign = np.ones((n, n))
    sign[:, n_exc:] = -1
    return np.abs(_scale_to_radius(w * sign, spectral_radius))


def init_unconstrained(n: int, spectral_radius: float = 0.9) -> np.ndarray:
    """``[N, N]`` float64 signed weights for ``bypass_dale``: N(0, 1/N), zero diagonal, scaled to the
    spectral radius (numpy's global RNG)."""
    w = np.random.randn(n, n) / np.sqrt(n)
    np.fill_diagonal(w, 0)
    return _scale_to_radius(w, spectral_radius)


def init_low_rank_factors(
    n: int, rank: int, spectral_radius: float = 0.9, dtype: Optional[torch.dtype] = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """``U, V`` ``[N, r]`` for the low-rank parameterisation: N(0, 1/r) entries (torch's global RNG,
    U first) times ``spectral_radius / sqrt(r)``."""
    u = torch.randn(n, rank, dtype=dtype) / math.sqrt(rank)
    v = torch.randn(n, rank, dtype=dtype) / math.sqrt(rank)
    scale = spectral_radius / math.sqrt(rank)
    return u * scale, v * scale
