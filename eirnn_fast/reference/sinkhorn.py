"""Pure-PyTorch twin of :func:`eirnn_fast.ops.sinkhorn` (oracle, fallback, documentation).

Batched log-domain Sinkhorn between x [B, n, d] and y [B, m, d] with weights a [B, n], b [B, m]
(each summing to 1), cost C [B, n, m] and entropic regularisation eps [B] (absolute, cost units)::

    f = g = 0
    for it = 0, 1, ..., max_iter:
        e     = eps_it                          (eps-scaling: max(eps, eps0 * decay**it); eps at the end)
        f_new = -e * LSE_j(log b_j + (g_j - C_ij) / e)
        err   = sum_i a_i |expm1((f_i - f_new_i) / e)|        (L1 row-marginal error of (f, g))
        f     = f_new
        stop if it == max_iter or (err < tol and eps had reached its target)   (per problem)
        g     = -e * LSE_i(log a_i + (f_i - C_ij) / e)
    value = <a, f> + <b, g>                      (dual objective = OT_eps after a final half-step)

The loop runs under ``no_grad``; the value is then recomputed with one differentiable row half-step
from the detached column potential g (GeomLoss-style), so autograd yields the envelope gradient
d value / d C = P with P_ij = a_i b_j exp((f_i + g_j - C_ij) / eps) and no stored iterates.
Zero weights are log-weights of -inf: their terms drop out of every logsumexp, potentials stay
finite and their plan rows/columns are exactly 0.

Precision at extreme eps (the fused kernels do exactly the same):

* tiny eps: the difference ``g_j - C_ij`` is formed before dividing by eps (``g / e - C / e``
  cancels catastrophically), and the plan is a row softmax, ``P_ij = a_i softmax_j(log b_j +
  (g_j - C_ij) / e)``, so its rows sum to a however large the potentials are;
* eps much larger than the costs: ``log b_j + (g_j - C_ij) / e`` rounds the cost term away and the
  value degenerates to eps * (rounding of log sum_j b_j), e.g. 1e23 at eps = 1e30 in float32. When
  ``2 (max C - min C + range of the other potential over the support) <= e`` every row's
  ``z_j = (g_j - C_ij) / e`` lies within 1/2 of its maximum and the LSE is taken in the
  near-uniform form ``zmax + log1p(sum_j b_j expm1(z_j - zmax))`` (weights summing to 1), exact in
  both regimes; the value then tends to ``<a b^T, C>`` as eps grows, as it should.
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


def _near_uniform(spread: torch.Tensor, q: torch.Tensor, lw: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
    """[B] bool: 2 (spread of C + range of q over the support of lw) <= e (the kernels' test)."""
    support = lw > -float("inf")
    inf = torch.full_like(q, float("inf"))
    q_range = torch.where(support, q, -inf).amax(1) - torch.where(support, q, inf).amin(1)
    return 2.0 * (spread + q_range) <= e


def _half_step(C: torch.Tensor, lw: torch.Tensor, q: torch.Tensor, e: torch.Tensor, dim: int, near) -> torch.Tensor:
    """-e * LSE_k(lw_k + (q_k - C_.k) / e) over ``dim`` of C [B, n, m]: dim 2 gives f [B, n] from
    (lw, q) = (log b, g), dim 1 gives g [B, m] from (log a, f). ``near`` [B] bool (or None): use the
    near-uniform form for those problems. Differentiable (the value's row half-step)."""
    side = 1 if dim == 2 else 2  # where lw / q broadcast against C
    lw_b, q_b = lw.unsqueeze(side), q.unsqueeze(side)
    z = (q_b - C) / e.view(-1, 1, 1)  # [B, n, m]
    lse = torch.logsumexp(lw_b + z, dim=dim)
    if near is not None and bool(near.any()):
        support = lw_b > -float("inf")
        zmax = torch.where(support, z, torch.full_like(z, -float("inf"))).amax(dim, keepdim=True)
        # 0 off the support and in the other problems, so no inf and no NaN gradient reaches C
        dz = torch.where(support & near.view(-1, 1, 1), z - zmax, torch.zeros_like(z))
        t = (lw_b.exp() * torch.expm1(dz)).sum(dim)
        lse = torch.where(near.view(-1, 1), zmax.squeeze(dim) + torch.log1p(t), lse)
    return -e.view(-1, 1) * lse


def cost_spread(C: torch.Tensor) -> torch.Tensor:
    """[B] max C - min C per problem (decides the near-uniform form)."""
    flat = C.detach().flatten(1)
    return flat.amax(1) - flat.amin(1)


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
    spread = cost_spread(C)
    f = C.new_zeros(B, n)
    g = C.new_zeros(B, m)
    a = log_a.exp()
    err = C.new_full((B,), float("inf"))
    iters = torch.zeros(B, dtype=torch.long, device=C.device)
    active = torch.ones(B, dtype=torch.bool, device=C.device)
    e_prev = _eps_schedule(eps, eps0, decay, 0, max_iter)
    it = 0
    while True:
        e = _eps_schedule(eps, eps0, decay, it, max_iter)  # [B]
        # row half-step: logsumexp over j
        f_new = _half_step(C, log_b, g, e, 2, _near_uniform(spread, g, log_b, e))
        err_new = (a * torch.expm1((f - f_new) / e.unsqueeze(1)).abs()).sum(1)
        f = torch.where(active.unsqueeze(1), f_new, f)
        err = torch.where(active, err_new, err)
        can_stop = (e if it == 0 else e_prev) == eps
        stop = active & ((it >= max_iter) | (can_stop & (err_new < tol)))
        iters = torch.where(stop, torch.full_like(iters, it), iters)
        active = active & ~stop
        if not bool(active.any()):
            break
        # column half-step: logsumexp over i
        g_new = _half_step(C, log_a, f, e, 1, _near_uniform(spread, f, log_a, e))
        g = torch.where(active.unsqueeze(1), g_new, g)
        e_prev = e
        it += 1
    value = (a * f).sum(1) + (log_b.exp() * g).sum(1)
    return f, g, value, iters, err


def sinkhorn_value_from_potentials(
    C: torch.Tensor, log_a: torch.Tensor, log_b: torch.Tensor, g: torch.Tensor, eps: torch.Tensor
) -> torch.Tensor:
    """value [B] = <a, f(g)> + <b, g> with f(g) one differentiable row half-step from detached g.

    Its gradient w.r.t. C is the plan P (envelope theorem); only C carries gradients."""
    g = g.detach()
    with torch.no_grad():
        near = _near_uniform(cost_spread(C), g, log_b, eps)
    f = _half_step(C, log_b, g, eps, 2, near)
    return (log_a.exp() * f).sum(1) + (log_b.exp() * g).sum(1)


def plan_reference(C, log_a, log_b, g, eps) -> torch.Tensor:
    """P [B, n, m] = a_i softmax_j(log b_j + (g_j - C_ij) / eps): the plan after the final row
    half-step (= exp(log a_i + log b_j + (f_i + g_j - C_ij) / eps) with that f), rows summing to a."""
    v = log_b.unsqueeze(1) + (g.unsqueeze(1) - C) / eps.view(-1, 1, 1)
    # softmax divides by the sum: at a tiny eps v ~ 1e12 and subtracting a logsumexp would lose
    # log a and the log 2 of near-ties in the rounding of v
    return log_a.exp().unsqueeze(2) * torch.softmax(v, dim=2)


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
