"""Batched log-domain Sinkhorn (DESIGN 3.2): validation + ``torch.autograd.Function`` over ``eirnn_fast._C``.

The cost matrix is built once per call on the torch side (a centred GEMM for the (squared)
Euclidean costs, a GEMM plus row and column terms for Poisson), the fused kernel runs every
iteration of every problem in one call and returns the potentials; the backward recomputes the plan
from the saved potentials and chains it to x and y with batched GEMMs. No iterate is stored, so the
memory of forward + backward does not depend on ``max_iter``.
"""

from __future__ import annotations

import math
import warnings
from typing import NamedTuple, Optional, Tuple, Union

import torch

from eirnn_fast.ops import _backend, _library
from eirnn_fast.reference.sinkhorn import (
    POISSON_X_FLOOR,
    cost_matrix_reference,
    plan_reference,
    sinkhorn_potentials_reference,
    sinkhorn_value_from_potentials,
)

COSTS = ("sqeuclidean", "poisson", "euclidean")
ON_NONCONVERGENCE = ("warn", "ignore", "raise")
EpsArg = Union[float, torch.Tensor]


class SinkhornConvergenceWarning(UserWarning):
    """Some problems of a Sinkhorn call stopped at ``max_iter`` with a marginal error >= ``tol``."""


class SinkhornConvergenceError(RuntimeError):
    """``on_nonconvergence="raise"``: some problems did not converge."""


class SinkhornInfo(NamedTuple):
    """Per-problem diagnostics of one solve (for ``debias=True``: of the cross term OT(x, y))."""

    iterations: torch.Tensor  # [B] int64: column half-steps done (max_iter when not converged)
    marginal_error: torch.Tensor  # [B] L1 row-marginal error of the last full iterate (columns exact)
    converged: torch.Tensor  # [B] bool: marginal_error < tol
    f: torch.Tensor  # [B, n] potential of x (cost units)
    g: torch.Tensor  # [B, m] potential of y
    eps: torch.Tensor  # [B] the eps used


# ---------------------------------------------------------------------------------------------
# validation


def _tensor(name: str, value) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    return value


def _all_finite(t: torch.Tensor) -> bool:
    """Every element finite. A NaN or inf element makes the sum NaN or inf, so a finite sum settles it
    in one reading pass (isfinite().all() writes a mask of every element first: at 16 x 64 x 11,826
    that check cost as much as the cost matrix); a non-finite sum (maybe only overflow) is re-checked
    element by element."""
    return bool(torch.isfinite(t.sum())) or bool(torch.isfinite(t).all())


def _validate_points(x, y, cost):
    x = _tensor("x", x)
    y = _tensor("y", y)
    if not isinstance(cost, str) or cost not in COSTS:
        raise ValueError(f"cost must be one of {COSTS}, got {cost!r}")
    if x.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"x must be float32 or float64, got {x.dtype}")
    if y.dtype != x.dtype:
        raise TypeError(f"y has dtype {y.dtype} but x has {x.dtype}; x and y must share one dtype")
    if y.device != x.device:
        raise ValueError(f"y is on {y.device} but x is on {x.device}; x and y must share one device")
    if x.dim() != 3:
        raise ValueError(f"x must be [B, n, d], got shape {tuple(x.shape)}")
    if y.dim() != 3:
        raise ValueError(f"y must be [B, m, d], got shape {tuple(y.shape)}")
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"x and y must have the same batch size B, got x {tuple(x.shape)} and y {tuple(y.shape)}")
    if x.shape[2] != y.shape[2]:
        raise ValueError(f"x and y must have the same feature size d, got x {tuple(x.shape)} and y {tuple(y.shape)}")
    if min(x.shape) == 0 or y.shape[1] == 0:
        raise ValueError(f"x and y need B, n, m, d >= 1, got x {tuple(x.shape)} and y {tuple(y.shape)}")
    if x.device.type == "meta":
        raise ValueError(
            "x and y are on the meta device: sinkhorn checks their values (NaN/inf, signs) and iterates to a "
            "tolerance, so it needs real data"
        )
    if torch.compiler.is_compiling():  # the value checks below read data back: eager only
        return x, y
    with torch.no_grad():  # one host sync per tensor; a NaN would otherwise come out as a finite value
        for name, t in (("x", x), ("y", y)):
            if not _all_finite(t):
                raise ValueError(f"{name} contains NaN or inf; the OT value is undefined")
    if cost == "poisson":
        with torch.no_grad():
            if bool((x < 0).any()):
                raise ValueError("x holds negative rates; the poisson cost needs x >= 0 (clamped below at 1e-6)")
            if bool((y < 0).any()):
                raise ValueError("y holds negative rates; the poisson cost needs y >= 0")
    return x, y


def _log_weights(name: str, w, B: int, k: int, ref: torch.Tensor) -> torch.Tensor:
    """Validated, normalised log-weights [B, k] (-inf for zero weights)."""
    if w is None:
        return ref.new_full((B, k), -math.log(k))
    w = _tensor(name, w)
    if w.requires_grad:
        raise NotImplementedError(
            f"gradients w.r.t. {name} are not implemented; pass {name}.detach() "
            "(the potentials are returned by sinkhorn(..., return_info=True) if you need them)"
        )
    if w.dtype != ref.dtype:
        raise TypeError(f"{name} has dtype {w.dtype} but x has {ref.dtype}")
    if w.device != ref.device:
        raise ValueError(f"{name} is on {w.device} but x is on {ref.device}")
    if w.shape == (k,):
        w = w.unsqueeze(0).expand(B, k)
    if w.shape != (B, k):
        raise ValueError(f"{name} must be [B, {k}] = [{B}, {k}] (or [{k}]), got shape {tuple(w.shape)}")
    checking = not torch.compiler.is_compiling()  # value checks read data back: eager only
    if checking and (not bool(torch.isfinite(w).all()) or bool((w < 0).any())):
        raise ValueError(f"{name} must hold finite, non-negative weights")
    # scale by the largest weight first: the sum of weights near the dtype's maximum (b * 1e38 in
    # float32) would overflow to inf and turn every log-weight into -inf (a NaN value)
    peak = w.amax(1, keepdim=True)
    if checking and bool((peak <= 0).any()):
        raise ValueError(f"every problem's {name} must have a positive total weight")
    w = w / peak
    return torch.log(w / w.sum(1, keepdim=True))


def _validate_eps(eps: EpsArg, B: int, ref: torch.Tensor) -> torch.Tensor:
    if isinstance(eps, bool) or not isinstance(eps, (int, float, torch.Tensor)):
        raise TypeError(f"eps must be a float or a tensor of shape [B], got {type(eps).__name__}")
    if isinstance(eps, torch.Tensor):
        if eps.requires_grad:
            raise NotImplementedError("gradients w.r.t. eps are not implemented; pass eps.detach()")
        if eps.numel() == 1:
            eps = eps.reshape(()).expand(B)
        if eps.shape != (B,):
            raise ValueError(f"eps must be a scalar or have shape [B] = [{B}], got {tuple(eps.shape)}")
        e = eps.to(device=ref.device, dtype=ref.dtype).contiguous()
    else:
        e = ref.new_full((B,), float(eps))
    tiny = torch.finfo(ref.dtype).tiny
    if torch.compiler.is_compiling():  # a tensor eps is not read back while tracing; a float is checked
        if not isinstance(eps, torch.Tensor) and not (math.isfinite(eps) and eps > 0):
            raise ValueError(f"eps must be finite and > 0, got {eps}")
        return e
    if not bool((torch.isfinite(e) & (e > 0)).all()):
        raise ValueError(f"eps must be finite and > 0, got {eps}")
    if bool((e < tiny).any()):  # 1 / eps would overflow to inf: (g - C) / eps is then inf or NaN
        raise ValueError(
            f"eps must be >= {tiny:.3g} (the smallest normal {ref.dtype}; 1 / eps must be finite), "
            f"got {float(e.min()):.3g}"
        )
    return e


def _validate_solver(max_iter, tol, eps_scaling, on_nonconvergence="warn"):
    if on_nonconvergence not in ON_NONCONVERGENCE:
        raise ValueError(f"on_nonconvergence must be one of {ON_NONCONVERGENCE}, got {on_nonconvergence!r}")
    if isinstance(max_iter, bool) or not isinstance(max_iter, int) or max_iter < 0:
        raise ValueError(f"max_iter must be an int >= 0, got {max_iter!r}")
    if isinstance(tol, bool) or not isinstance(tol, (int, float)) or not (tol >= 0) or math.isinf(tol):
        raise ValueError(f"tol must be a finite float >= 0, got {tol!r}")
    if eps_scaling is not None:
        if isinstance(eps_scaling, bool) or not isinstance(eps_scaling, (int, float)) or not 0 < eps_scaling < 1:
            raise ValueError(f"eps_scaling must be None or a decay factor in (0, 1), got {eps_scaling!r}")


# ---------------------------------------------------------------------------------------------
# cost (built once, no autograd graph) and its explicit backward


def _centred(x: torch.Tensor, y: torch.Tensor):
    """x and y minus their joint mean point [B, 1, d] (the squared distances' GEMM form cancels less
    on centred points; the distances are translation invariant). The same centring as
    cost_matrix_reference, without concatenating x and y."""
    mu = (x.sum(1, keepdim=True) + y.sum(1, keepdim=True)) / (x.shape[1] + y.shape[1])
    return x - mu, y - mu


def _sq_from_centred(xc: torch.Tensor, yc: torch.Tensor, exact_norms: bool = False) -> torch.Tensor:
    """||xc_i||^2 + ||yc_j||^2 - 2 xc_i . yc_j, clamped at 0: one batched GEMM into the norms' sum.

    The squared norms come from vector_norm (one reduction pass, ~12x faster than summing the
    [B, n, d] product at d = 11,826) unless ``exact_norms``: then as cost_matrix_reference sums them,
    for the Euclidean cost, whose sqrt turns a rounding difference of ~1e-16 at a zero distance into
    1e-8."""
    if exact_norms:
        nx, ny = torch.linalg.vecdot(xc, xc), torch.linalg.vecdot(yc, yc)
    else:
        nx = torch.linalg.vector_norm(xc, dim=-1).square_()
        ny = torch.linalg.vector_norm(yc, dim=-1).square_()
    return torch.baddbmm(nx.unsqueeze(2) + ny.unsqueeze(1), xc, yc.transpose(1, 2), alpha=-2.0).clamp_min_(0.0)


def _euclidean_cost(x: torch.Tensor, y: torch.Tensor, cost: str):
    """``(C, xc, yc)`` for the two Euclidean costs: C from the centred points xc, yc (the backward's
    GEMM operands); the unsquared cost is the sqrt (sqrt(0) = 0; its gradient at 0 is set to 0 in
    _cost_backward)."""
    xc, yc = _centred(x, y)
    C = _sq_from_centred(xc, yc, exact_norms=cost == "euclidean")
    return (C if cost == "sqeuclidean" else C.sqrt_()), xc, yc


@torch.no_grad()
def _cost_forward(x: torch.Tensor, y: torch.Tensor, cost: str) -> torch.Tensor:
    """C [B, n, m] without an autograd graph (the values of cost_matrix_reference)."""
    if cost in ("sqeuclidean", "euclidean"):
        return _euclidean_cost(x, y, cost)[0]
    return cost_matrix_reference(x, y, cost)


def _sq_backward(xc, yc, G, need_x, need_y):
    """Gradients of sum_ij G_ij ||x_i - y_j||^2 from the centred points: 2 (r_i xc_i - (G yc)_i),
    2 (c_j yc_j - (G^T xc)_j), each one batched GEMM added into the row / column term."""
    dx = torch.baddbmm(G.sum(2, keepdim=True) * xc, G, yc, beta=2.0, alpha=-2.0) if need_x else None
    dy = torch.baddbmm(G.sum(1).unsqueeze(2) * yc, G.transpose(1, 2), xc, beta=2.0, alpha=-2.0) if need_y else None
    return dx, dy


def _cost_backward(x, y, C, G, cost, need_x, need_y):
    """Chain dL/dC = G [B, n, m] to x and y with batched GEMMs (for the Euclidean costs x and y are
    the centred points the forward saved)."""
    if cost == "sqeuclidean":
        return _sq_backward(x, y, G, need_x, need_y)
    if cost == "euclidean":
        pos = C > 0
        Gs = torch.where(pos, G / (2.0 * torch.where(pos, C, torch.ones_like(C))), torch.zeros_like(G))
        return _sq_backward(x, y, Gs, need_x, need_y)
    # poisson: dC/dx_id = 1 - y_jd / x_id (x >= floor, else 0); dC/dy_jd = log(max(y_jd, floor)) - log x_id
    xc = x.clamp_min(POISSON_X_FLOOR)
    dx = dy = None
    if need_x:
        dx = (G.sum(2, keepdim=True) - (G @ y) / xc) * (x >= POISSON_X_FLOOR).to(x.dtype)
    if need_y:
        dy = G.sum(1).unsqueeze(2) * torch.log(y.clamp_min(POISSON_X_FLOOR)) - G.transpose(1, 2) @ torch.log(xc)
    return dx, dy


def _solve(C, log_a, log_b, eps, eps0, decay, max_iter, tol, fused):
    if fused:
        return _library.op("sinkhorn_solve")(C, log_a, log_b, eps, eps0, decay, max_iter, tol)
    return sinkhorn_potentials_reference(C, log_a, log_b, eps, max_iter, tol, eps0, decay)


def _plan(C, log_a, log_b, g, eps, fused):
    if fused:
        return _library.op("sinkhorn_plan")(C, log_a, log_b, g, eps)
    return plan_reference(C, log_a, log_b, g, eps)


def _check_convergence(what: str, err: torch.Tensor, tol: float, max_iter: int, mode: str) -> None:
    """Warn about / raise on problems that stopped at max_iter with err >= tol (one host sync)."""
    if mode == "ignore" or tol == 0:  # tol = 0 asks for exactly max_iter iterations
        return
    if torch.compiler.is_compiling():  # reading err back would break the graph: eager only
        return
    bad = ~(err < tol)
    if not bool(bad.any()):
        return
    msg = (
        f"sinkhorn: {int(bad.sum())} of {err.numel()} problems{what} did not converge within max_iter={max_iter} "
        f"iterations (largest L1 marginal error {float(err[bad].max()):.3g} >= tol={tol:g}); raise max_iter or "
        "eps, or pass on_nonconvergence='ignore' (or 'raise')"
    )
    if mode == "raise":
        raise SinkhornConvergenceError(msg)
    warnings.warn(msg, SinkhornConvergenceWarning, stacklevel=3)


class _Cost(torch.autograd.Function):
    """C [B, n, m] built without an autograd graph; backward: dL/dC chained to x and y with batched
    GEMMs (_cost_backward). The solve's registered autograd formula supplies dL/dC = P* grad_value."""

    @staticmethod
    def forward(ctx, x, y, cost):
        ctx.cost = cost
        if cost in ("sqeuclidean", "euclidean"):  # keep the centred points: the backward's GEMM operands
            C, xc, yc = _euclidean_cost(x, y, cost)
            ctx.save_for_backward(xc, yc, C)
            return C
        C = _cost_forward(x, y, cost).contiguous()
        ctx.save_for_backward(x, y, C)
        return C

    @staticmethod
    def backward(ctx, G):
        x, y, C = ctx.saved_tensors
        dx, dy = _cost_backward(x, y, C, G, ctx.cost, ctx.needs_input_grad[0], ctx.needs_input_grad[1])
        return dx, dy, None


def _ot(x, y, log_a, log_b, eps, eps_scaling, max_iter, tol, cost, fused):
    """One batched OT_eps solve -> (value [B], f, g, iters, err)."""
    if eps_scaling is not None:
        with torch.no_grad():
            C0 = _cost_forward(x, y, cost)
            eps0 = torch.maximum((C0.amax(dim=(1, 2)) - C0.amin(dim=(1, 2))), eps)
            del C0
        decay = float(eps_scaling)
    else:
        eps0, decay = eps, 1.0
    if fused:
        C = _Cost.apply(x, y, cost) if (x.requires_grad or y.requires_grad) else _cost_forward(x, y, cost).contiguous()
        f, g, value, iters, err = _library.op("sinkhorn_solve")(C, log_a, log_b, eps, eps0, decay, max_iter, float(tol))
        return value, f.detach(), g.detach(), iters, err.detach()
    C = cost_matrix_reference(x, y, cost)
    f, g, _, iters, err = sinkhorn_potentials_reference(C.detach(), log_a, log_b, eps, max_iter, tol, eps0, decay)
    value = sinkhorn_value_from_potentials(C, log_a, log_b, g, eps)
    return value, f, g, iters, err


def _prepare(x, y, eps, cost, a, b, max_iter, tol, eps_scaling, backend, on_nonconvergence="warn"):
    x, y = _validate_points(x, y, cost)
    _validate_solver(max_iter, tol, eps_scaling, on_nonconvergence)
    B, n, _ = x.shape
    m = y.shape[1]
    log_a = _log_weights("a", a, B, n, x)
    log_b = _log_weights("b", b, B, m, x)
    e = _validate_eps(eps, B, x)
    fused = _backend.choose("sinkhorn", backend, x.device) == "fused"
    return x, y, log_a, log_b, e, fused


def sinkhorn(
    x: torch.Tensor,  # [B, n, d]  model side (carries gradients)
    y: torch.Tensor,  # [B, m, d]  data side (may carry gradients)
    *,
    eps: EpsArg,  # absolute, cost units; float or [B]
    cost: str = "sqeuclidean",
    a: Optional[torch.Tensor] = None,  # [B, n] or [n]
    b: Optional[torch.Tensor] = None,  # [B, m] or [m]
    max_iter: int = 1000,
    tol: float = 1e-6,
    eps_scaling: Optional[float] = None,
    debias: bool = False,
    return_info: bool = False,
    on_nonconvergence: str = "warn",
    backend: str = "auto",
) -> Union[torch.Tensor, Tuple[torch.Tensor, SinkhornInfo]]:
    r"""Entropic optimal-transport cost between batches of point clouds (log-domain Sinkhorn).

    .. math::

        \mathrm{OT}_\varepsilon = \min_{P \ge 0,\ P1 = a,\ P^\top 1 = b}
            \langle P, C\rangle + \varepsilon\, \mathrm{KL}(P \,\|\, a b^\top)

    computed per problem as the dual objective :math:`\langle a, f\rangle + \langle b, g\rangle`
    after a final row half-step (equal to the primal value at convergence).

    Args:
        x: ``[B, n, d]`` model-side points (e.g. trial features). float32 or float64.
        y: ``[B, m, d]`` data-side points, same dtype/device.
        eps: entropic regularisation in cost units (float or ``[B]`` tensor, > 0). See
            :func:`relative_eps` for eps relative to the cost spread.
        cost: ``"sqeuclidean"`` (sum_d (x-y)^2, no 1/2), ``"poisson"`` (sum_d y log(y/x) - y + x,
            x clamped below at 1e-6, 0 log 0 = 0; asymmetric, x is the model side) or
            ``"euclidean"`` (unsquared norm; gradient 0 where the distance is 0).
        a, b: non-negative weights ``[B, n]`` / ``[B, m]`` (or one ``[n]`` / ``[m]`` for all problems),
            default uniform. Each problem's weights are normalised to sum 1; zero weights are allowed.
            Gradients w.r.t. a and b are not implemented (NotImplementedError if they require grad).
        max_iter: most column half-steps per problem. tol: stop a problem when the L1 row-marginal
            error (columns are exact after each column half-step) is below tol, checked every
            iteration inside the kernel, no host synchronisation. ``tol=0`` runs exactly max_iter.
        eps_scaling: None (fixed eps) or a decay factor in (0, 1): eps_it = max(eps, spread * decay^it)
            with spread = max C - min C per problem; convergence is tested only once eps is reached.
        debias: return the Sinkhorn divergence OT(x, y) - (OT(x, x) + OT(y, y)) / 2 (three solves).
            For ``"poisson"`` the self-terms use the same Bregman cost with the second argument as
            the data side and the first as the model side: OT(x, x) on D(x_j || x_i), OT(y, y) on
            D(y_j || y_i) with the model-side copy of y clamped at 1e-6 like x; both diagonals are 0,
            so the divergence vanishes when x = y (up to the clamp).
        return_info: also return a :class:`SinkhornInfo` (iterations, marginal errors, potentials).
        on_nonconvergence: when some problems stop at ``max_iter`` with a marginal error >= ``tol``:
            ``"warn"`` (default; one :class:`SinkhornConvergenceWarning` naming how many and the
            largest error), ``"ignore"`` or ``"raise"`` (:class:`SinkhornConvergenceError`).
            ``"warn"``/``"raise"`` read the errors back (one host sync); ``tol=0`` never warns.
        backend: ``"auto"`` | ``"fused"`` | ``"reference"``.

    Returns:
        value ``[B]`` (and the info). Gradients w.r.t. x and y are the envelope gradient: the plan
        P* is recomputed from the saved potentials and chained through the cost
        (sqeuclidean: dx_i = 2 sum_j P_ij (x_i - y_j); poisson: dx_id = sum_j P_ij (1 - y_jd / x_id),
        dy_jd = sum_i P_ij log(y_jd / x_id) with log(max(y, 1e-6))), one batched GEMM each; memory
        is O(B n m) independent of max_iter. Second derivatives are not supported.
        CPU: fused C++ kernel (float32 and float64). CUDA: one kernel launch for all iterations,
        compile-checked only so far (no GPU was available when it was written).
    """
    x, y, log_a, log_b, e, fused = _prepare(
        x, y, eps, cost, a, b, max_iter, tol, eps_scaling, backend, on_nonconvergence
    )
    if not isinstance(debias, bool):
        raise TypeError(f"debias must be a bool, got {type(debias).__name__}")
    value, f, g, iters, err = _ot(x, y, log_a, log_b, e, eps_scaling, max_iter, tol, cost, fused)
    _check_convergence(" of OT(x, y)" if debias else "", err, tol, max_iter, on_nonconvergence)
    if debias:
        vxx, _, _, _, err_xx = _ot(x, x, log_a, log_a, e, eps_scaling, max_iter, tol, cost, fused)
        _check_convergence(" of OT(x, x)", err_xx, tol, max_iter, on_nonconvergence)
        vyy, _, _, _, err_yy = _ot(y, y, log_b, log_b, e, eps_scaling, max_iter, tol, cost, fused)
        _check_convergence(" of OT(y, y)", err_yy, tol, max_iter, on_nonconvergence)
        value = value - 0.5 * (vxx + vyy)
    if not return_info:
        return value
    return value, SinkhornInfo(iters, err, err < tol, f, g, e)


def sinkhorn_info(x, y, **kwargs) -> Tuple[torch.Tensor, SinkhornInfo]:
    """``sinkhorn(..., return_info=True)``: value [B] and per-problem iterations / marginal errors."""
    kwargs["return_info"] = True
    return sinkhorn(x, y, **kwargs)


@torch.no_grad()
def sinkhorn_plan(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: EpsArg,
    cost: str = "sqeuclidean",
    a: Optional[torch.Tensor] = None,
    b: Optional[torch.Tensor] = None,
    max_iter: int = 1000,
    tol: float = 1e-6,
    eps_scaling: Optional[float] = None,
    on_nonconvergence: str = "warn",
    backend: str = "auto",
) -> torch.Tensor:  # [B, n, m]
    """Optimal entropic plan P [B, n, m] (same arguments and solver as :func:`sinkhorn`).

    P_ij = a_i b_j exp((f_i + g_j - C_ij) / eps) after the final row half-step, computed as the row
    softmax a_i softmax_j(log b_j + (g_j - C_ij) / eps), so its row sums are a to rounding at any
    cost scale; its column sums are b up to the reported marginal error. Not differentiable
    (returned detached). ``on_nonconvergence`` as in :func:`sinkhorn`."""
    x, y, log_a, log_b, e, fused = _prepare(
        x, y, eps, cost, a, b, max_iter, tol, eps_scaling, backend, on_nonconvergence
    )
    C = _cost_forward(x, y, cost).contiguous()
    if eps_scaling is not None:
        eps0, decay = torch.maximum(C.amax(dim=(1, 2)) - C.amin(dim=(1, 2)), e), float(eps_scaling)
    else:
        eps0, decay = e, 1.0
    _, g, _, _, err = _solve(C, log_a, log_b, e, eps0, decay, max_iter, float(tol), fused)
    _check_convergence("", err, tol, max_iter, on_nonconvergence)
    return _plan(C, log_a, log_b, g, e, fused)


@torch.no_grad()
def relative_eps(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    scale: float = 0.05,
    cost: str = "sqeuclidean",
    stat: str = "std",
) -> torch.Tensor:  # [B]
    """eps [B] relative to each problem's cost spread: scale * stat(C), stat in "std" (OTT's default
    0.05 * std), "mean", "range" (max - min) or "median". Detached; pass it as ``eps=``."""
    x, y = _validate_points(x, y, cost)
    if stat not in ("std", "mean", "range", "median"):
        raise ValueError(f"stat must be 'std', 'mean', 'range' or 'median', got {stat!r}")
    if not (isinstance(scale, (int, float)) and scale > 0):
        raise ValueError(f"scale must be a float > 0, got {scale!r}")
    C = _cost_forward(x, y, cost).flatten(1)
    s = {
        "std": lambda: C.std(1) if C.shape[1] > 1 else C.new_zeros(C.shape[0]),
        "mean": lambda: C.mean(1),
        "range": lambda: C.amax(1) - C.amin(1),
        "median": lambda: C.median(1).values,
    }[stat]()
    out = scale * s
    # degenerate spread (all costs equal): fall back to scale * (|mean| or 1) so eps stays > 0
    fallback = scale * C.mean(1).abs().clamp_min(1.0)
    return torch.where(out > 0, out, fallback)
