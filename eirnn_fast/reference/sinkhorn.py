"""Pure-PyTorch twin of :func:`eirnn_fast.ops.sinkhorn` (oracle, fallback, documentation).

Batched log-domain Sinkhorn between x [B, n, d] and y [B, m, d] with weights a [B, n], b [B, m]
(each summing to 1), cost C [B, n, m] and entropic regularisation eps [B] (absolute, cost units)::

    f = g = 0
    for it = 0, 1, ..., max_iter:
        e     = eps_it                          (eps-scaling: max(eps, eps0 * decay**it); eps at the end)
        f_new = -e * LSE_j(log b_j + (g_j - C_ij) / e)
        err   = sum_i a_i |1 - exp((f_i - f_new_i) / e)|      (L1 row-marginal error of (f, g))
        f     = f_new
        stop if it == max_iter or (err < tol and eps had reached its target)   (per problem)
        g     = -e * LSE_i(log a_i + (f_i - C_ij) / e)
    value = <a, f> + <b, g>                      (dual objective = OT_eps after a final half-step)

The loop runs under ``no_grad``; the value is then recomputed with one differentiable row half-step
from the detached column potential g (GeomLoss-style), so autograd yields the envelope gradient
d value / d C = P with P_ij = a_i b_j exp((f_i + g_j - C_ij) / eps) and no stored iterates.
Zero weights are log-weights of -inf: their terms drop out of every logsumexp, potentials stay
finite and their plan rows/columns are exactly 0.
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch

POISSON_X_FLOOR = 1e-6  # model-side rates are clamped below at this value in the Poisson cost


def cost_matrix_reference(x: torch.Tensor, y: torch.Tensor, cost: str) -> torch.Tensor:
    """Differentiable cost C [B, n, m] between x [B, n, d] and y [B, m, d].

    - ``sqeuclidean``: sum_d (x_id - y_jd)^2, as a GEMM on points centred by their joint mean.
    - ``euclidean``: sqrt of the above; gradient 0 where the distance is 0.
    - ``poisson``: sum_d [y_jd log(y_jd / x_id) - y_jd + x_id] with x clamped below at 1e-6 and
      0 log 0 = 0 (a GEMM plus row and column terms). The gradient w.r.t. y uses log(max(y, 1e-6))
      (the exact derivative is -inf at y = 0).
    """
    if cost in ("sqeuclidean", "euclidean"):
        mu = torch.cat([x, y], dim=1).mean(dim=1, keepdim=True)  # [B, 1, d]
        xc, yc = x - mu, y - mu
        sq = (xc * xc).sum(-1).unsqueeze(2) + (yc * yc).sum(-1).unsqueeze(1) - 2.0 * xc @ yc.transpose(1, 2)
        sq = sq.clamp_min(0.0)
        if cost == "sqeuclidean":
            return sq
        pos = sq > 0
        return torch.where(pos, torch.sqrt(torch.where(pos, sq, torch.ones_like(sq))), torch.zeros_like(sq))
    if cost == "poisson":
        xc = x.clamp_min(POISSON_X_FLOOR)
        yd = y.detach()
        # sum_d [y log y - y]; its gradient is set to log(max(y, floor)) (value unchanged)
        a_term = (torch.xlogy(yd, yd) - y).sum(-1) + ((y - yd) * (1.0 + torch.log(yd.clamp_min(POISSON_X_FLOOR)))).sum(
            -1
        )
        return a_term.unsqueeze(1) + xc.sum(-1).unsqueeze(2) - torch.log(xc) @ y.transpose(1, 2)
    raise ValueError(f"cost must be 'sqeuclidean', 'poisson' or 'euclidean', got {cost!r}")


def _eps_schedule(eps: torch.Tensor, eps0: torch.Tensor, decay: float, it: int, max_iter: int) -> torch.Tensor:
    if decay >= 1.0 or it >= max_iter:
        return eps
    return torch.maximum(eps, eps0 * decay**it)


@torch.no_grad()
def sinkhorn_potentials_reference(
    C: torch.Tensor,  # [B, n, m]
    log_a: torch.Tensor,  # [B, n]
    log_b: torch.Tensor,  # [B, m]
    eps: torch.Tensor,  # [B]
    max_iter: int,
    tol: float,
    eps0: Optional[torch.Tensor] = None,  # [B] eps-scaling start (None: no scaling)
    decay: float = 1.0,
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The iterations (no autograd): returns f [B, n], g [B, m], value [B], iters [B], err [B]."""
    B, n, m = C.shape
    if eps0 is None:
        eps0, decay = eps, 1.0
    f = C.new_zeros(B, n)
    g = C.new_zeros(B, m)
    a = log_a.exp()
    err = C.new_full((B,), float("inf"))
    iters = torch.zeros(B, dtype=torch.long, device=C.device)
    active = torch.ones(B, dtype=torch.bool, device=C.device)
    e_prev = _eps_schedule(eps, eps0, decay, 0, max_iter)
    it = 0
    while True:
        e = _eps_schedule(eps, eps0, decay, it, max_iter).unsqueeze(1)  # [B, 1]
        # row half-step: explicit logsumexp over j
        z = log_b.unsqueeze(1) + (g.unsqueeze(1) - C) / e.unsqueeze(2)  # [B, n, m]
        zmax = z.amax(dim=2, keepdim=True)
        f_new = -e * (zmax.squeeze(2) + torch.log(torch.exp(z - zmax).sum(dim=2)))
        err_new = (a * (1.0 - torch.exp((f - f_new) / e)).abs()).sum(1)
        f = torch.where(active.unsqueeze(1), f_new, f)
        err = torch.where(active, err_new, err)
        can_stop = (e.squeeze(1) if it == 0 else e_prev) == eps
        stop = active & ((it >= max_iter) | (can_stop & (err_new < tol)))
        iters = torch.where(stop, torch.full_like(iters, it), iters)
        active = active & ~stop
        if not bool(active.any()):
            break
        # column half-step: explicit logsumexp over i
        z = log_a.unsqueeze(2) + (f.unsqueeze(2) - C) / e.unsqueeze(2)  # [B, n, m]
        zmax = z.amax(dim=1, keepdim=True)
        g_new = -e * (zmax.squeeze(1) + torch.log(torch.exp(z - zmax).sum(dim=1)))
        g = torch.where(active.unsqueeze(1), g_new, g)
        e_prev = e.squeeze(1)
        it += 1
    value = (a * f).sum(1) + (log_b.exp() * g).sum(1)
    return f, g, value, iters, err


def sinkhorn_value_from_potentials(
    C: torch.Tensor, log_a: torch.Tensor, log_b: torch.Tensor, g: torch.Tensor, eps: torch.Tensor
) -> torch.Tensor:
    """value [B] = <a, f(g)> + <b, g> with f(g) one differentiable row half-step from detached g.

    Its gradient w.r.t. C is the plan P (envelope theorem); only C carries gradients."""
    e = eps.unsqueeze(1)
    f = -e * torch.logsumexp(log_b.unsqueeze(1) + (g.detach().unsqueeze(1) - C) / e.unsqueeze(2), dim=2)
    return (log_a.exp() * f).sum(1) + (log_b.exp() * g.detach()).sum(1)


def plan_reference(C, log_a, log_b, f, g, eps) -> torch.Tensor:
    """P [B, n, m] = exp(log a_i + log b_j + (f_i + g_j - C_ij) / eps)."""
    e = eps.view(-1, 1, 1)
    return torch.exp(log_a.unsqueeze(2) + log_b.unsqueeze(1) + (f.unsqueeze(2) + g.unsqueeze(1) - C) / e)


def sinkhorn_reference(
    x: torch.Tensor,  # [B, n, d]
    y: torch.Tensor,  # [B, m, d]
    eps: torch.Tensor,  # [B]
    cost: str = "sqeuclidean",
    log_a: Optional[torch.Tensor] = None,  # [B, n]
    log_b: Optional[torch.Tensor] = None,  # [B, m]
    max_iter: int = 1000,
    tol: float = 1e-6,
    eps0: Optional[torch.Tensor] = None,
    decay: float = 1.0,
):
    """OT_eps value [B] with the envelope gradient, plus (f, g, iters, err). Inputs already validated."""
    B, n, _ = x.shape
    m = y.shape[1]
    if log_a is None:
        log_a = x.new_full((B, n), -torch.log(torch.tensor(float(n), dtype=torch.float64)).item())
    if log_b is None:
        log_b = y.new_full((B, m), -torch.log(torch.tensor(float(m), dtype=torch.float64)).item())
    C = cost_matrix_reference(x, y, cost)
    f, g, _, iters, err = sinkhorn_potentials_reference(C.detach(), log_a, log_b, eps, max_iter, tol, eps0, decay)
    value = sinkhorn_value_from_potentials(C, log_a, log_b, g, eps)
    return value, f, g, iters, err
