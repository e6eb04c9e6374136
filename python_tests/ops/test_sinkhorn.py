"""sinkhorn: fused kernel vs the float64 reference and POT, gradients, edge cases, bad input, memory."""

import importlib
import warnings

import pytest
import torch
from testutils import devices, requires_compiled

from eirnn_fast.ops import relative_eps, sinkhorn, sinkhorn_info, sinkhorn_plan
from eirnn_fast.reference import cost_matrix_reference, sinkhorn_reference

pytestmark = requires_compiled
# the module (eirnn_fast.ops re-exports the function under the same name)
sinkhorn_module = importlib.import_module("eirnn_fast.ops.sinkhorn")
COSTS = ["sqeuclidean", "poisson", "euclidean"]


def make(B, n, m, d, dtype=torch.float64, seed=0, device="cpu"):
    gen = torch.Generator().manual_seed(seed)
    x = 0.2 + torch.rand(B, n, d, generator=gen, dtype=torch.float64)
    y = 0.2 + torch.rand(B, m, d, generator=gen, dtype=torch.float64)
    return (x.to(device, dtype).requires_grad_(), y.to(device, dtype).requires_grad_())


def rel(a, b):
    return ((a.double() - b.double()).abs().max() / b.double().abs().max().clamp_min(1e-30)).item()


def explicit_cost(x, y, cost):
    """Direct float64 formulas (no GEMM) for the oracle gradients."""
    diff = x.unsqueeze(2) - y.unsqueeze(1)  # [B, n, m, d]
    if cost == "sqeuclidean":
        return (diff**2).sum(-1)
    if cost == "euclidean":
        return (diff**2).sum(-1).sqrt()
    xc = x.clamp_min(1e-6).unsqueeze(2)
    yy = y.unsqueeze(1)
    return (torch.xlogy(yy, yy) - yy * torch.log(xc) - yy + xc).sum(-1)


@pytest.mark.parametrize("device", devices())
@pytest.mark.parametrize("cost", COSTS)
@pytest.mark.parametrize("shape", [(3, 9, 7, 4), (2, 1, 5, 3), (1, 6, 1, 2), (4, 16, 16, 11)])
def test_float64_matches_reference_value_plan_grad(device, cost, shape):
    B, n, m, d = shape
    x, y = make(B, n, m, d, device=device, seed=n * 10 + m)
    kw = dict(eps=0.05, cost=cost, max_iter=5000, tol=1e-10)
    v_f, info = sinkhorn_info(x, y, backend="fused", **kw)
    gx_f, gy_f = torch.autograd.grad(v_f.sum(), [x, y])
    v_r, info_r = sinkhorn_info(x, y, backend="reference", **kw)
    gx_r, gy_r = torch.autograd.grad(v_r.sum(), [x, y])
    assert bool(info.converged.all()), info.marginal_error
    # the stopping test sits at rounding level here: allow one iteration of difference
    assert (info.iterations - info_r.iterations).abs().max().item() <= 1
    assert rel(v_f, v_r) < 1e-10
    assert rel(gx_f, gx_r) < 1e-9 and rel(gy_f, gy_r) < 1e-9
    P = sinkhorn_plan(x, y, backend="fused", **kw)
    assert rel(P, sinkhorn_plan(x, y, backend="reference", **kw)) < 1e-9
    # gradient = sum_j P_ij dC_ij/dx_i (explicit float64 formula, autograd through it)
    xd, yd = x.detach().double().requires_grad_(), y.detach().double().requires_grad_()
    ex_gx, ex_gy = torch.autograd.grad((P.double() * explicit_cost(xd, yd, cost)).sum(), [xd, yd])
    assert (gx_f.double() - ex_gx).abs().max().item() < 1e-6
    assert (gy_f.double() - ex_gy).abs().max().item() < 1e-6
    # marginals: rows exact, columns within tol
    assert torch.allclose(P.sum(2), torch.full_like(P.sum(2), 1.0 / n), atol=1e-12)
    assert (P.sum(1) - 1.0 / m).abs().sum(1).max().item() < 1e-9
    # value = <P, C> + eps KL(P || ab^T) at convergence
    C = explicit_cost(x.detach(), y.detach(), cost)
    ab = torch.full_like(P, 1.0 / (n * m))
    kl = (torch.xlogy(P, P) - P * torch.log(ab) - P + ab).sum((1, 2))
    assert rel(v_f, (P * C).sum((1, 2)) + 0.05 * kl) < 1e-9


@pytest.mark.parametrize("cost", COSTS)
def test_float32_close_to_float64(cost):
    x, y = make(5, 20, 24, 6, seed=3)
    x32, y32 = (t.detach().float().requires_grad_() for t in (x, y))
    kw = dict(eps=0.05, cost=cost, max_iter=2000, tol=1e-5)
    v64 = sinkhorn(x, y, backend="reference", **{**kw, "tol": 1e-12})
    g64 = torch.autograd.grad(v64.sum(), [x, y])
    v32 = sinkhorn(x32, y32, backend="fused", **kw)
    g32 = torch.autograd.grad(v32.sum(), [x32, y32])
    assert v32.dtype == torch.float32
    assert rel(v32, v64) < 1e-4
    for a, b in zip(g32, g64):
        assert rel(a, b) < 2e-3


def test_matches_pot():
    ot = pytest.importorskip("ot")
    x, y = make(3, 12, 10, 5, seed=11)
    eps = 0.07
    v = sinkhorn(x, y, eps=eps, max_iter=5000, tol=1e-14)
    P = sinkhorn_plan(x, y, eps=eps, max_iter=5000, tol=1e-14)
    for k in range(3):
        M = ot.dist(x[k].detach().numpy(), y[k].detach().numpy(), metric="sqeuclidean")
        a, b = ot.unif(12), ot.unif(10)
        G = ot.bregman.sinkhorn_log(a, b, M, eps, numItermax=20000, stopThr=1e-15)
        import numpy as np

        kl = (G * np.log(G / np.outer(a, b))).sum()
        val = (G * M).sum() + eps * kl
        assert abs(v[k].item() - val) / abs(val) < 1e-7
        assert np.abs(P[k].numpy() - G).max() < 1e-9


@pytest.mark.parametrize("cost", ["sqeuclidean", "poisson"])
def test_values_and_gradients_match_pot_envelope(cost):
    """POT's ``ot.solve(..., grad='envelope')`` on our cost matrix: values to 1e-7 and dOT/dx, dOT/dy
    (chained through the same cost function) to 1e-6."""
    ot = pytest.importorskip("ot")
    import warnings

    x, y = make(2, 9, 7, 4, seed=5)
    if cost == "poisson":  # rates: positive points
        x, y = (x.detach().exp() + 0.1).requires_grad_(), (y.detach().exp() + 0.1).requires_grad_()
    else:
        y = y.detach().requires_grad_()
    eps = 0.2
    v = sinkhorn(x, y, eps=eps, cost=cost, max_iter=5000, tol=1e-14)
    gx, gy = torch.autograd.grad(v.sum(), [x, y])
    for k in range(2):
        xk, yk = x[k].detach().clone().requires_grad_(), y[k].detach().clone().requires_grad_()
        M = cost_matrix_reference(xk[None], yk[None], cost)[0]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # POT warns that tol=1e-15 was not reached
            res = ot.solve(M, reg=eps, reg_type="KL", method="sinkhorn_log", max_iter=20000, tol=1e-15, grad="envelope")
        px, py = torch.autograd.grad(res.value, [xk, yk])
        assert abs(v[k].item() - res.value.item()) / abs(res.value.item()) < 1e-7
        assert (gx[k] - px).abs().max().item() < 1e-6 * max(1.0, px.abs().max().item())
        assert (gy[k] - py).abs().max().item() < 1e-6 * max(1.0, py.abs().max().item())


def test_tol_zero_runs_max_iter_and_batched_equals_loop():
    x, y = make(6, 10, 12, 3, seed=5)
    # heterogeneous difficulty: scale some problems so they converge at different iterations
    scale = torch.tensor([1, 4, 0.5, 2, 8, 1], dtype=torch.float64).view(-1, 1, 1)
    xs, ys = x.detach() * scale, y.detach() * scale
    _, info = sinkhorn_info(xs, ys, eps=0.1, max_iter=50, tol=0.0)
    assert info.iterations.tolist() == [50] * 6
    v, info = sinkhorn_info(xs, ys, eps=0.1, max_iter=3000, tol=1e-9)
    assert len(set(info.iterations.tolist())) > 1
    for k in range(6):
        vk, ik = sinkhorn_info(xs[k : k + 1], ys[k : k + 1], eps=0.1, max_iter=3000, tol=1e-9)
        assert vk.item() == v[k].item() and ik.iterations.item() == info.iterations[k].item()


@pytest.mark.parametrize("cost", COSTS)
def test_gradcheck(cost):
    x, y = make(2, 3, 4, 2, seed=1)

    def fn(x, y):
        return sinkhorn(x, y, eps=0.3, cost=cost, max_iter=10000, tol=1e-14, backend="fused")

    assert torch.autograd.gradcheck(fn, (x, y), eps=1e-6, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("cost", COSTS)
def test_zero_weights(cost):
    x, y = make(2, 6, 5, 3, seed=2)
    a = torch.tensor([[1.0, 0, 2, 0, 1, 1], [0, 0, 0, 0, 0, 1]], dtype=torch.float64)
    b = torch.tensor([[0.0, 1, 1, 0, 1], [1, 1, 1, 1, 1]], dtype=torch.float64)
    v, info = sinkhorn_info(x, y, eps=0.05, cost=cost, a=a, b=b, max_iter=3000, tol=1e-12)
    gx, gy = torch.autograd.grad(v.sum(), [x, y])
    assert torch.isfinite(v).all() and torch.isfinite(gx).all() and torch.isfinite(gy).all()
    assert torch.isfinite(info.f).all() and torch.isfinite(info.g).all()
    assert (gx[a == 0] == 0).all() and (gy[b == 0] == 0).all()
    # same as dropping the zero-weight points
    keep_a, keep_b = a[0] > 0, b[0] > 0
    v0 = sinkhorn(
        x[:1, keep_a], y[:1, keep_b], eps=0.05, cost=cost, a=a[:1, keep_a], b=b[:1, keep_b], max_iter=3000, tol=1e-12
    )
    assert abs(v0.item() - v[0].item()) < 1e-10
    vr = sinkhorn(x, y, eps=0.05, cost=cost, a=a, b=b, max_iter=3000, tol=1e-12, backend="reference")
    assert rel(v, vr) < 1e-10


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("cost", COSTS)
@pytest.mark.parametrize("eps", [1e4, 1e-5])
def test_extreme_eps_finite(dtype, cost, eps):
    x, y = make(3, 8, 7, 4, dtype=dtype, seed=4)
    v, info = sinkhorn_info(x, y, eps=eps, cost=cost, max_iter=200, tol=1e-6)
    gx, gy = torch.autograd.grad(v.sum(), [x, y])
    for t in (v, gx, gy, info.f, info.g, info.marginal_error):
        assert torch.isfinite(t).all()
    if eps < 1e-3:  # near-hard assignment: the plan must not underflow (total mass 1)
        P = sinkhorn_plan(x, y, eps=eps, cost=cost, max_iter=200, tol=1e-6)
        # float32: (f + g - C) / eps carries ~1e-7 |C| / eps of rounding in the exponent
        atol = 1e-6 if dtype == torch.float64 else 1e-2
        assert torch.isfinite(P).all()
        assert torch.allclose(P.sum((1, 2)), torch.ones(3, dtype=dtype), atol=atol)


def test_batch_sizes_one_and_thousand():
    x, y = make(1000, 4, 5, 2, dtype=torch.float32, seed=6)
    v, info = sinkhorn_info(x, y, eps=0.05, max_iter=500, tol=1e-5)
    gx, _ = torch.autograd.grad(v.sum(), [x, y])
    assert v.shape == (1000,) and torch.isfinite(gx).all()
    v1 = sinkhorn(x[:1], y[:1], eps=0.05, max_iter=500, tol=1e-5)
    assert v1.shape == (1,) and abs(v1.item() - v[0].item()) < 1e-6
    vr = sinkhorn(x.detach().double(), y.detach().double(), eps=0.05, max_iter=500, tol=1e-9, backend="reference")
    assert rel(v, vr) < 1e-4


def test_eps_tensor_and_relative_eps():
    x, y = make(3, 8, 9, 4, seed=8)
    e = relative_eps(x, y, scale=0.05)
    assert e.shape == (3,) and (e > 0).all() and not e.requires_grad
    v = sinkhorn(x, y, eps=e, max_iter=3000, tol=1e-12)
    for k in range(3):
        vk = sinkhorn(x[k : k + 1], y[k : k + 1], eps=float(e[k]), max_iter=3000, tol=1e-12)
        assert abs(vk.item() - v[k].item()) < 1e-12


@pytest.mark.parametrize("cost", COSTS)
def test_eps_scaling_same_optimum(cost):
    x, y = make(2, 10, 12, 3, seed=9)
    v0, i0 = sinkhorn_info(x, y, eps=0.01, cost=cost, max_iter=20000, tol=1e-11)
    v1, i1 = sinkhorn_info(x, y, eps=0.01, cost=cost, max_iter=20000, tol=1e-11, eps_scaling=0.5)
    vr, ir = sinkhorn_info(x, y, eps=0.01, cost=cost, max_iter=20000, tol=1e-11, eps_scaling=0.5, backend="reference")
    assert rel(v1, v0) < 1e-8 and rel(v1, vr) < 1e-10
    assert torch.equal(i1.iterations, ir.iterations)


@pytest.mark.parametrize("cost", COSTS)
def test_debias(cost):
    x, y = make(2, 6, 6, 3, seed=10)
    s_self = sinkhorn(x, x, eps=0.1, cost=cost, debias=True, max_iter=5000, tol=1e-12)
    assert s_self.abs().max().item() < 1e-9
    s = sinkhorn(x, y, eps=0.1, cost=cost, debias=True, max_iter=5000, tol=1e-12)
    (gx,) = torch.autograd.grad(s.sum(), [x])
    assert (s > 0).all() and torch.isfinite(gx).all()
    sr = sinkhorn(x, y, eps=0.1, cost=cost, debias=True, max_iter=5000, tol=1e-12, backend="reference")
    assert rel(s, sr) < 1e-9


def test_poisson_cost_matches_formula_and_zero_data():
    x, y = make(2, 5, 4, 6, seed=12)
    yz = y.detach().clone()
    yz[:, :, :2] = 0.0
    xz = x.detach().clone()
    xz[0, 0, 0] = 0.0  # clamped at 1e-6
    C = cost_matrix_reference(xz, yz, "poisson")
    assert rel(C, explicit_cost(xz, yz, "poisson")) < 1e-12
    yz.requires_grad_()
    v = sinkhorn(xz.requires_grad_(), yz, eps=0.1, cost="poisson")
    gx, gy = torch.autograd.grad(v.sum(), [xz, yz])
    assert torch.isfinite(gx).all() and torch.isfinite(gy).all() and gx[0, 0, 0] == 0


def test_euclidean_zero_distance_gradient():
    x, _ = make(1, 4, 4, 3, seed=13)
    y = x.detach().clone().requires_grad_()
    v = sinkhorn(x, y, eps=0.01, cost="euclidean", max_iter=2000, tol=1e-12)
    gx, gy = torch.autograd.grad(v.sum(), [x, y])
    assert torch.isfinite(gx).all() and torch.isfinite(gy).all()


def test_no_grad_wrt_weights_raises():
    x, y = make(1, 3, 3, 2)
    with pytest.raises(NotImplementedError, match="a"):
        sinkhorn(x, y, eps=0.1, a=torch.ones(1, 3, dtype=torch.float64, requires_grad=True))


@pytest.mark.parametrize(
    "kwargs,exc,match",
    [
        (dict(y=torch.rand(2, 4, 3, dtype=torch.float64)), ValueError, "batch size"),
        (dict(y=torch.rand(1, 4, 2, dtype=torch.float64)), ValueError, "feature size"),
        (dict(y=torch.rand(1, 4, 3)), TypeError, "dtype"),
        (dict(x=torch.rand(1, 3, 3, dtype=torch.float16)), TypeError, "x must be float32 or float64"),
        (dict(x=torch.rand(3, 3, dtype=torch.float64)), ValueError, r"x must be \[B, n, d\]"),
        (dict(x=[[1.0]]), TypeError, "x must be a torch.Tensor"),
        (dict(eps=0.0), ValueError, "eps"),
        (dict(eps=-1.0), ValueError, "eps"),
        (dict(eps=float("nan")), ValueError, "eps"),
        (dict(eps="big"), TypeError, "eps"),
        (dict(eps=torch.ones(5, dtype=torch.float64)), ValueError, "eps"),
        (dict(cost="cosine"), ValueError, "cost"),
        (dict(cost="poisson", x=-torch.rand(1, 3, 3, dtype=torch.float64)), ValueError, "x holds negative"),
        (dict(cost="poisson", y=-torch.rand(1, 4, 3, dtype=torch.float64)), ValueError, "y holds negative"),
        (dict(a=torch.ones(1, 4, dtype=torch.float64)), ValueError, "a must be"),
        (dict(b=-torch.ones(1, 4, dtype=torch.float64)), ValueError, "b must hold"),
        (dict(b=torch.zeros(1, 4, dtype=torch.float64)), ValueError, "positive total"),
        (dict(max_iter=-1), ValueError, "max_iter"),
        (dict(max_iter=1.5), ValueError, "max_iter"),
        (dict(tol=-1.0), ValueError, "tol"),
        (dict(eps_scaling=1.5), ValueError, "eps_scaling"),
        (dict(backend="gpu"), ValueError, "backend"),
    ],
)
def test_bad_input(kwargs, exc, match):
    args = dict(x=torch.rand(1, 3, 3, dtype=torch.float64), y=torch.rand(1, 4, 3, dtype=torch.float64), eps=0.1)
    args.update(kwargs)
    x, y = args.pop("x"), args.pop("y")
    with pytest.raises(exc, match=match):
        sinkhorn(x, y, **args)


def _peak_bytes(max_iter):
    import tracemalloc  # noqa: F401  (torch allocations are not traced; use the profiler instead)

    x, y = make(4, 64, 64, 8, dtype=torch.float32, seed=14)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], profile_memory=True) as prof:
        v = sinkhorn(x, y, eps=0.05, max_iter=max_iter, tol=0.0)
        torch.autograd.grad(v.sum(), [x, y])
    # peak of the running sum of allocations/frees seen by the profiler
    events = sorted((e for e in prof.events() if e.cpu_memory_usage != 0), key=lambda e: e.time_range.start)
    cur = peak = 0
    for e in events:
        cur += e.cpu_memory_usage
        peak = max(peak, cur)
    return peak


def test_memory_independent_of_max_iter():
    p10, p1000 = _peak_bytes(10), _peak_bytes(1000)
    assert p10 > 0
    assert p1000 <= 1.05 * p10 + 4096, (p10, p1000)


def test_reference_backend_memory_independent_of_max_iter():
    x, y = make(2, 16, 16, 3, seed=15)
    saved = []

    def pack(t):
        saved.append(t.numel())
        return t

    for it in (5, 500):
        saved.clear()
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            v = sinkhorn_reference(x, y, torch.full((2,), 0.1, dtype=torch.float64), max_iter=it, tol=0.0)[0]
        if it == 5:
            n5 = sum(saved)
    assert sum(saved) == n5
    assert torch.isfinite(v).all()


@pytest.mark.parametrize("side", ["x", "y"])
@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_points_raise(side, bad):
    x = torch.rand(2, 4, 3, dtype=torch.float64)
    y = torch.rand(2, 5, 3, dtype=torch.float64)
    (x if side == "x" else y)[1, 2, 0] = bad
    with pytest.raises(ValueError, match=f"{side} contains NaN or inf"):
        sinkhorn(x, y, eps=0.1)


# ---- extreme scales (fuzz run of issue 18): fused == reference, plan rows = a, values bounded ----
def _weights(B, k, dtype, seed):
    return torch.rand(B, k, generator=torch.Generator().manual_seed(seed), dtype=torch.float64).to(dtype) + 0.1


@pytest.mark.parametrize(
    "dtype, eps, scale",
    [
        (torch.float32, 1e-12, 1.0),  # fused plan was inf, gradients NaN; reference finite
        (torch.float64, 1e-300, 1.0),
        (torch.float64, 0.1, 1e30),  # plan rows summed to ~7 a (f + g - C cancelled at 1e60)
        (torch.float32, 1e-6, 1e3),
    ],
)
@pytest.mark.parametrize("cost", ["sqeuclidean", "euclidean"])
def test_tiny_eps_and_huge_costs_keep_plan_rows_and_gradients(dtype, eps, scale, cost):
    gen = torch.Generator().manual_seed(0)
    x = (scale * torch.randn(2, 6, 3, generator=gen, dtype=torch.float64)).to(dtype)
    y = (scale * torch.randn(2, 5, 3, generator=gen, dtype=torch.float64)).to(dtype)
    a, b = _weights(2, 6, dtype, 1), _weights(2, 5, dtype, 2)
    kw = dict(eps=eps, cost=cost, a=a, b=b, max_iter=300, tol=1e-6, on_nonconvergence="ignore")
    out = {}
    for backend in ("fused", "reference"):
        xg = x.clone().requires_grad_()
        v = sinkhorn(xg, y, backend=backend, **kw)
        (gx,) = torch.autograd.grad(v.sum(), [xg])
        P = sinkhorn_plan(x, y, backend=backend, **kw)
        assert torch.isfinite(v).all() and torch.isfinite(gx).all() and torch.isfinite(P).all(), backend
        rows = P.sum(2) / (a / a.sum(1, keepdim=True))
        assert (rows - 1).abs().max().item() < 1e-5, (backend, rows)
        out[backend] = (v, gx, P)
    # values agree; the plans (and gradients) are near-hard assignments here (eps is below the
    # rounding of the costs), which the two backends may break differently where rows are near-tied
    assert rel(out["fused"][0], out["reference"][0]) < (1e-5 if dtype == torch.float32 else 1e-9)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("eps", [1e30, 1e8, 1e3])
def test_huge_eps_tends_to_the_independent_coupling(dtype, eps):
    """OT_eps -> <a b^T, C> as eps -> inf (the deviation is O(Var C / eps)). With random weights the
    value was 1.2e23 at eps = 1e30 in float32 (eps times the rounding of log sum b) and 0 in float64."""
    gen = torch.Generator().manual_seed(1)
    x, y = (
        torch.randn(3, 7, 2, generator=gen, dtype=torch.float64),
        torch.randn(3, 5, 2, generator=gen, dtype=torch.float64),
    )
    a, b = _weights(3, 7, torch.float64, 3), _weights(3, 5, torch.float64, 4)
    C = cost_matrix_reference(x, y, "sqeuclidean")
    indep = ((a / a.sum(1, keepdim=True)).unsqueeze(2) * (b / b.sum(1, keepdim=True)).unsqueeze(1) * C).sum((1, 2))
    bound = C.flatten(1).var(1) / eps  # |value - indep| <= Var(C) / (2 eps) to first order
    vals = {}
    for backend in ("fused", "reference"):
        xg = x.to(dtype).requires_grad_()
        v = sinkhorn(xg, y.to(dtype), eps=eps, a=a.to(dtype), b=b.to(dtype), backend=backend, max_iter=2000, tol=1e-7)
        (gx,) = torch.autograd.grad(v.sum(), [xg])
        slack = 1e-5 * indep.abs() if dtype == torch.float32 else 1e-12 * indep.abs()
        assert ((v.double() - indep).abs() <= bound + slack).all(), (backend, v, indep)
        assert torch.isfinite(gx).all()
        vals[backend] = v
    assert rel(vals["fused"], vals["reference"]) < (1e-6 if dtype == torch.float32 else 1e-12)


def test_near_uniform_switch_is_continuous():
    """The near-uniform LSE form starts at eps = 2 (spread + potential range): both forms are exact,
    so the value is smooth across the switch."""
    x, y = make(1, 6, 5, 2, seed=9)
    C = cost_matrix_reference(x.detach(), y.detach(), "sqeuclidean")
    spread = (C.max() - C.min()).item()
    eps = torch.tensor([2 * spread * s for s in (1.5, 2.0, 2.5, 3.0, 4.0, 6.0)], dtype=torch.float64)
    xs, ys = x.detach().expand(6, -1, -1), y.detach().expand(6, -1, -1)
    for backend in ("fused", "reference"):
        v = sinkhorn(xs, ys, eps=eps, max_iter=5000, tol=1e-13, backend=backend)
        # OT_eps is smooth in eps: second differences of v(1/eps) stay at rounding level plus curvature
        inv = 1.0 / eps
        slope = (v[1:] - v[:-1]) / (inv[1:] - inv[:-1])
        assert ((slope[1:] - slope[:-1]).abs() < 0.05 * slope.abs().max()).all(), (backend, v)


@pytest.mark.parametrize("side", ["a", "b"])
def test_weights_near_the_float_maximum_are_normalised(side):
    """b * 1e38 passed validation and returned NaN (the float32 sum of the weights overflowed)."""
    x, y = make(2, 6, 5, 3, dtype=torch.float32, seed=3)
    w = _weights(2, 6 if side == "a" else 5, torch.float32, 5)
    v1 = sinkhorn(x, y, eps=0.1, **{side: w})
    vbig = sinkhorn(x, y, eps=0.1, **{side: w * 1e38})
    vtiny = sinkhorn(x, y, eps=0.1, **{side: w * 1e-36})  # near the smallest normal float32
    assert torch.isfinite(vbig).all() and rel(vbig, v1) < 1e-5 and rel(vtiny, v1) < 1e-5


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_subnormal_eps_raises(dtype):
    x, y = make(1, 3, 3, 2, dtype=dtype)
    tiny = torch.finfo(dtype).tiny
    with pytest.raises(ValueError, match=r"eps must be >= .*smallest normal"):
        sinkhorn(x, y, eps=tiny / 4)
    sinkhorn(x, y, eps=tiny, on_nonconvergence="ignore")  # the smallest normal is accepted


# ---- non-convergence -----------------------------------------------------------------------------
def test_nonconvergence_warns_by_default_and_can_be_ignored_or_raised():
    from eirnn_fast.ops import SinkhornConvergenceError, SinkhornConvergenceWarning

    x, y = make(3, 8, 7, 2, seed=5)
    kw = dict(eps=0.01, max_iter=3, tol=1e-9)
    for backend in ("fused", "reference"):
        with pytest.warns(
            SinkhornConvergenceWarning, match=r"3 of 3 problems did not converge within max_iter=3.*largest L1"
        ):
            v_warn = sinkhorn(x, y, backend=backend, **kw)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            v_ignore = sinkhorn(x, y, backend=backend, on_nonconvergence="ignore", **kw)
            sinkhorn(x, y, backend=backend, eps=0.01, max_iter=3, tol=0.0)  # tol=0: a fixed iteration count
            sinkhorn(x, y, backend=backend, eps=1.0, max_iter=2000, tol=1e-6)  # converges: silent
        assert torch.equal(v_warn, v_ignore)
        with pytest.raises(SinkhornConvergenceError, match="did not converge"):
            sinkhorn(x, y, backend=backend, on_nonconvergence="raise", **kw)
        with pytest.warns(SinkhornConvergenceWarning, match="did not converge"):
            sinkhorn_plan(x, y, backend=backend, **kw)
    with pytest.warns(SinkhornConvergenceWarning, match=r"of OT\(x, y\)"):
        sinkhorn(x, y, debias=True, **kw)
    with pytest.raises(ValueError, match="on_nonconvergence must be one of"):
        sinkhorn(x, y, eps=0.1, on_nonconvergence="quiet")


def test_nonconvergence_counts_only_the_unconverged_problems():
    x, y = make(2, 6, 6, 2, seed=6)
    eps = torch.tensor([5.0, 0.002], dtype=torch.float64)  # the first converges at once
    with pytest.warns(UserWarning, match=r"1 of 2 problems"):
        _, info = sinkhorn_info(x, y, eps=eps, max_iter=20, tol=1e-8)
    assert info.converged.tolist() == [True, False]


@pytest.mark.parametrize("cost", ["sqeuclidean", "euclidean"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_fused_cost_and_its_gradient_match_explicit_formula_off_centre(cost, dtype):
    # points far from the origin (offset 50 in every dimension) and a wide d: the fused path builds C
    # from points centred by their joint mean, norms from vector_norm and one baddbmm, and chains
    # dL/dC back through baddbmm on the saved centred points; all must equal the explicit
    # difference formula, in values and in gradients, on fresh random data
    gen = torch.Generator().manual_seed(int(torch.randint(0, 2**31 - 1, ()).item()))
    x64 = 50.0 + torch.randn(3, 7, 300, generator=gen, dtype=torch.float64)
    y64 = 50.0 + torch.randn(3, 5, 300, generator=gen, dtype=torch.float64)
    G = torch.rand(3, 7, 5, generator=gen, dtype=torch.float64)
    xe, ye = x64.clone().requires_grad_(), y64.clone().requires_grad_()
    C_true = explicit_cost(xe, ye, cost)
    gx_true, gy_true = torch.autograd.grad((C_true * G).sum(), [xe, ye])
    x, y = x64.to(dtype).requires_grad_(), y64.to(dtype).requires_grad_()
    C = sinkhorn_module._Cost.apply(x, y, cost)
    gx, gy = torch.autograd.grad((C * G.to(dtype)).sum(), [x, y])
    tol = 1e-10 if dtype == torch.float64 else 2e-5
    assert rel(C, C_true) < tol
    assert rel(gx, gx_true) < tol and rel(gy, gy_true) < tol
    # the no-grad builder (plans, relative_eps, eps scaling) gives the same matrix
    assert rel(sinkhorn_module._cost_forward(x.detach(), y.detach(), cost), C_true) < tol


def test_nonfinite_check_reads_sum_first_but_overflow_is_not_rejected():
    big = torch.full((2, 4, 8), 3.0e38)  # finite, but the float32 sum overflows to inf
    assert sinkhorn_module._all_finite(big)
    for bad in (float("nan"), float("inf"), -float("inf")):
        t = torch.rand(2, 4, 8)
        t[1, 2, 3] = bad
        assert not sinkhorn_module._all_finite(t)
    t = torch.rand(2, 4, 8)
    t[0, 0, 0], t[1, 1, 1] = float("inf"), -float("inf")  # inf - inf: the sum is NaN, still caught
    assert not sinkhorn_module._all_finite(t)
