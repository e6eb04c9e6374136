"""edge_message_passing / edge_mlp_message_passing: fused kernels against dense and index_add_
references (values and gradients), edge shapes, bad input, determinism across runs and threads."""

import warnings

import pytest
import torch
from testutils import devices, requires_compiled

import eirnn_fast
from eirnn_fast.ops import EdgeGraph, edge_message_passing, edge_mlp_message_passing
from eirnn_fast.reference import edge_message_passing_reference, edge_mlp_messages_reference

pytestmark = requires_compiled


def rel_err(a, b):
    return ((a.double() - b.double()).abs().max() / b.double().abs().max().clamp_min(1e-30)).item()


def random_graph(num_src, num_dst, E, seed=0, index_dtype=torch.int64, device="cpu", skewed=True):
    """Edges with a heavy-tailed in-degree (like the connectome), duplicates allowed."""
    gen = torch.Generator().manual_seed(seed)
    if skewed and num_dst > 0:
        p = torch.rand(num_dst, generator=gen) ** 4 + 0.05
        dst = torch.multinomial(p, E, replacement=True, generator=gen) if E else torch.zeros(0, dtype=torch.long)
    else:
        dst = torch.randint(0, max(num_dst, 1), (E,), generator=gen)
    src = torch.randint(0, max(num_src, 1), (E,), generator=gen)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return EdgeGraph(src.to(index_dtype).to(device), dst.to(index_dtype).to(device), num_src, num_dst)


def dense_matrix(graph, w):
    A = torch.zeros(graph.num_dst, graph.num_src, dtype=w.dtype, device=w.device)
    return A.index_put((graph.dst.long(), graph.src.long()), w, accumulate=True)


# ---- plain op: values and gradients --------------------------------------------------------------
@pytest.mark.parametrize("device", devices())
@pytest.mark.parametrize("index_dtype", [torch.int32, torch.int64])
@pytest.mark.parametrize("F", [1, 2, 3, 4, 8, 33, 130])
def test_float64_matches_dense_and_index_add(device, index_dtype, F):
    g = random_graph(70, 90, 900, seed=F, index_dtype=index_dtype, device=device)
    assert g.index_dtype == index_dtype
    gen = torch.Generator().manual_seed(F)
    w = torch.randn(g.num_edges, generator=gen, dtype=torch.float64).to(device).requires_grad_()
    x = torch.randn(g.num_src, F, generator=gen, dtype=torch.float64).to(device).requires_grad_()
    cot = torch.randn(g.num_dst, F, generator=gen, dtype=torch.float64).to(device)
    out = edge_message_passing(g, w, x, backend="fused")
    d_w, d_x = torch.autograd.grad(out, (w, x), cot)
    # dense oracle: out = A x, dA = cot x^T sampled on the edges, dx = A^T cot
    A = dense_matrix(g, w.detach())
    assert rel_err(out, A @ x.detach()) < 1e-10
    assert rel_err(d_x, A.t() @ cot) < 1e-10
    dA = cot @ x.detach().t()
    assert rel_err(d_w, dA[g.dst.long(), g.src.long()]) < 1e-10
    # index_add_ reference (autograd)
    ref = edge_message_passing(g, w, x, backend="reference")
    r_w, r_x = torch.autograd.grad(ref, (w, x), cot)
    assert rel_err(out, ref) < 1e-10 and rel_err(d_w, r_w) < 1e-10 and rel_err(d_x, r_x) < 1e-10


@pytest.mark.parametrize("device", devices())
@pytest.mark.parametrize("F", [1, 2, 4, 7])
def test_float32_matches_float64_reference(device, F):
    g = random_graph(300, 250, 8000, seed=3, device=device)
    gen = torch.Generator().manual_seed(1)
    w64 = torch.randn(g.num_edges, generator=gen, dtype=torch.float64).to(device)
    x64 = torch.randn(g.num_src, F, generator=gen, dtype=torch.float64).to(device)
    cot = torch.randn(g.num_dst, F, generator=gen, dtype=torch.float64).to(device)
    w32, x32 = w64.float().requires_grad_(), x64.float().requires_grad_()
    out = edge_message_passing(g, w32, x32, backend="fused")
    assert out.dtype == torch.float32
    d_w, d_x = torch.autograd.grad(out, (w32, x32), cot.float())
    w64.requires_grad_(), x64.requires_grad_()
    ref = edge_message_passing_reference(g.src, g.dst, g.num_dst, w64, x64)
    r_w, r_x = torch.autograd.grad(ref, (w64, x64), cot)
    assert rel_err(out, ref) < 1e-5
    assert rel_err(d_w, r_w) < 1e-5
    assert rel_err(d_x, r_x) < 1e-5


def test_gradcheck_float64():
    g = random_graph(6, 5, 14, seed=2)
    w = torch.randn(14, dtype=torch.float64, requires_grad=True)
    x = torch.randn(6, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda w_, x_: edge_message_passing(g, w_, x_, backend="fused"), (w, x))


def test_only_one_gradient_requested():
    g = random_graph(20, 20, 100, seed=4)
    w = torch.randn(100, dtype=torch.float64, requires_grad=True)
    x = torch.randn(20, 2, dtype=torch.float64)
    (d_w,) = torch.autograd.grad(edge_message_passing(g, w, x, backend="fused").sum(), (w,))
    (r_w,) = torch.autograd.grad(edge_message_passing(g, w, x, backend="reference").sum(), (w,))
    assert rel_err(d_w, r_w) < 1e-12
    w2 = w.detach()
    x2 = x.clone().requires_grad_()
    (d_x,) = torch.autograd.grad(edge_message_passing(g, w2, x2, backend="fused").sum(), (x2,))
    (r_x,) = torch.autograd.grad(edge_message_passing(g, w2, x2, backend="reference").sum(), (x2,))
    assert rel_err(d_x, r_x) < 1e-12


# ---- edge shapes ---------------------------------------------------------------------------------
@pytest.mark.parametrize("index_dtype", [torch.int32, torch.int64])
def test_empty_graph(index_dtype):
    g = EdgeGraph(torch.zeros(0, dtype=index_dtype), torch.zeros(0, dtype=index_dtype), 4, 3)
    assert g.num_edges == 0 and g.rowptr.tolist() == [0, 0, 0, 0] and g.rowptr_t.tolist() == [0] * 5
    w = torch.zeros(0, dtype=torch.float64, requires_grad=True)
    x = torch.randn(4, 2, dtype=torch.float64, requires_grad=True)
    out = edge_message_passing(g, w, x, backend="fused")
    assert out.shape == (3, 2) and bool((out == 0).all())
    d_w, d_x = torch.autograd.grad(out, (w, x), torch.ones(3, 2, dtype=torch.float64))
    assert d_w.shape == (0,) and bool((d_x == 0).all())


def test_zero_nodes():
    g = EdgeGraph(torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long), 0, 0)
    out = edge_message_passing(g, torch.zeros(0), torch.zeros(0, 3), backend="fused")
    assert out.shape == (0, 3)


def test_nodes_without_edges_and_1d_values():
    # node 0 and 4 receive nothing, node 3 sends nothing
    src = torch.tensor([0, 1, 2, 1, 2], dtype=torch.int32)
    dst = torch.tensor([1, 2, 3, 3, 1], dtype=torch.int32)
    g = EdgeGraph(src, dst, 4, 5)
    w = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0], dtype=torch.float64, requires_grad=True)
    x = torch.tensor([1.0, 10.0, 100.0, 1000.0], dtype=torch.float64, requires_grad=True)
    out = edge_message_passing(g, w, x, backend="fused")
    assert out.shape == (5,)
    assert out.tolist() == [0.0, 1.0 + 500.0, 20.0, 300.0 + 40.0, 0.0]
    d_w, d_x = torch.autograd.grad(out, (w, x), torch.arange(5, dtype=torch.float64))
    # d_w[e] = cot[dst e] * x[src e]; d_x[j] = sum_{e: src e = j} w_e cot[dst e]
    assert d_w.tolist() == [1 * 1.0, 2 * 10.0, 3 * 100.0, 3 * 10.0, 1 * 100.0]
    assert d_x.tolist() == [1.0 * 1, 2.0 * 2 + 4.0 * 3, 3.0 * 3 + 5.0 * 1, 0.0]
    assert g.in_degree().tolist() == [0, 2, 1, 2, 0] and g.out_degree().tolist() == [1, 2, 2, 0]


def test_non_contiguous_inputs():
    g = random_graph(40, 30, 300, seed=5)
    base_x = torch.randn(3, 40, dtype=torch.float64)
    x = base_x.t()  # [40, 3] non-contiguous
    base_w = torch.randn(600, dtype=torch.float64)
    w = base_w[::2]  # strided
    assert not x.is_contiguous() and not w.is_contiguous()
    out = edge_message_passing(g, w, x, backend="fused")
    ref = edge_message_passing(g, w.contiguous(), x.contiguous(), backend="reference")
    assert rel_err(out, ref) < 1e-12
    xg, wg = x.detach().requires_grad_(), w.detach().requires_grad_()
    cot = torch.randn(4, 30, dtype=torch.float64).t()[:, :3]
    a = torch.autograd.grad(edge_message_passing(g, wg, xg, backend="fused"), (wg, xg), cot)
    b = torch.autograd.grad(edge_message_passing(g, wg, xg, backend="reference"), (wg, xg), cot)
    assert all(rel_err(p, q) < 1e-12 for p, q in zip(a, b))


def test_graph_layout_and_to():
    src = torch.tensor([2, 0, 1, 0], dtype=torch.int64)
    dst = torch.tensor([0, 1, 0, 0], dtype=torch.int64)
    g = EdgeGraph(src, dst, 3, 2)
    assert g.rowptr.tolist() == [0, 3, 4] and g.col.tolist() == [0, 1, 2, 0]
    assert g.perm.tolist() == [3, 2, 0, 1]
    assert g.rowptr_t.tolist() == [0, 2, 3, 4] and g.col_t.tolist() == [0, 1, 0, 0]
    assert g.perm_t.tolist() == [3, 1, 2, 0]
    assert g.to("cpu") is g and "num_edges=4" in repr(g)


def test_mixed_index_dtypes_use_int64():
    g = EdgeGraph(torch.tensor([0, 1], dtype=torch.int32), torch.tensor([1, 0], dtype=torch.int64), 2, 2)
    assert g.index_dtype == torch.int64


# ---- validation ----------------------------------------------------------------------------------
def test_out_of_range_indices_raise():
    with pytest.raises(ValueError, match=r"src contains index 5 at edge 1.*num_src=5"):
        EdgeGraph(torch.tensor([0, 5]), torch.tensor([0, 1]), 5, 3)
    with pytest.raises(ValueError, match=r"dst contains index -1 at edge 0.*num_dst=3"):
        EdgeGraph(torch.tensor([0, 1]), torch.tensor([-1, 1]), 5, 3)
    with pytest.raises(ValueError, match="dst contains index 0"):
        EdgeGraph(torch.tensor([0]), torch.tensor([0]), 5, 0)


def test_bad_graph_inputs_raise():
    with pytest.raises(TypeError, match="src must be an int32 or int64"):
        EdgeGraph(torch.tensor([0.0, 1.0]), torch.tensor([0, 1]), 2, 2)
    with pytest.raises(TypeError, match="dst must be an int32 or int64"):
        EdgeGraph(torch.tensor([0, 1]), torch.tensor([0, 1], dtype=torch.int16), 2, 2)
    with pytest.raises(ValueError, match=r"src must be 1-D"):
        EdgeGraph(torch.zeros(2, 2, dtype=torch.long), torch.tensor([0, 1]), 2, 2)
    with pytest.raises(ValueError, match="same length"):
        EdgeGraph(torch.tensor([0, 1]), torch.tensor([0]), 2, 2)
    with pytest.raises(TypeError, match="src must be a torch.Tensor"):
        EdgeGraph([0, 1], torch.tensor([0, 1]), 2, 2)
    with pytest.raises(TypeError, match="num_dst must be an int"):
        EdgeGraph(torch.tensor([0]), torch.tensor([0]), 2, 2.0)
    with pytest.raises(ValueError, match="num_src must be >= 0"):
        EdgeGraph(torch.tensor([], dtype=torch.long), torch.tensor([], dtype=torch.long), -1, 2)


def test_duplicates_reported():
    src, dst = torch.tensor([0, 1, 0, 0]), torch.tensor([1, 1, 1, 1])
    with pytest.warns(UserWarning, match="2 duplicate"):
        g = EdgeGraph(src, dst, 2, 2)
    assert g.num_duplicate_pairs == 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert EdgeGraph(src, dst, 2, 2, on_duplicate="ignore").num_duplicate_pairs == 2
        assert EdgeGraph(torch.tensor([0, 1]), torch.tensor([1, 1]), 2, 2).num_duplicate_pairs == 0
    with pytest.raises(ValueError, match="duplicate"):
        EdgeGraph(src, dst, 2, 2, on_duplicate="raise")
    # duplicates add up, each with its own weight and gradient
    g = EdgeGraph(src, dst, 2, 2, on_duplicate="ignore")
    w = torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=torch.float64, requires_grad=True)
    out = edge_message_passing(g, w, torch.tensor([[1.0], [10.0]], dtype=torch.float64), backend="fused")
    assert out[:, 0].tolist() == [0.0, 1.0 + 20.0 + 3.0 + 4.0]
    (d_w,) = torch.autograd.grad(out.sum(), (w,))
    assert d_w.tolist() == [1.0, 10.0, 1.0, 1.0]


def test_bad_op_inputs_raise():
    g = random_graph(5, 4, 10, seed=0)
    w = torch.randn(10)
    x = torch.randn(5, 2)
    with pytest.raises(TypeError, match="graph must be an eirnn_fast.ops.EdgeGraph"):
        edge_message_passing((g.src, g.dst), w, x)
    with pytest.raises(ValueError, match=r"edge_weight must be \[E\] = \[10\]"):
        edge_message_passing(g, torch.randn(9), x)
    with pytest.raises(TypeError, match="edge_weight has dtype torch.float64 but node_values has torch.float32"):
        edge_message_passing(g, w.double(), x)
    with pytest.raises(TypeError, match="edge_weight must be float32 or float64"):
        edge_message_passing(g, torch.ones(10, dtype=torch.long), x)
    with pytest.raises(TypeError, match="node_values must be float32 or float64"):
        edge_message_passing(g, w, torch.ones(5, 2, dtype=torch.int32))
    with pytest.raises(ValueError, match=r"node_values must be \[num_src, F\].*num_src=5"):
        edge_message_passing(g, w, torch.randn(4, 2))
    with pytest.raises(ValueError, match="node_values must be"):
        edge_message_passing(g, w, torch.randn(5, 2, 1))
    with pytest.raises(TypeError, match="node_values must be a torch.Tensor"):
        edge_message_passing(g, w, [[0.0]])
    with pytest.raises(ValueError, match="backend must be one of"):
        edge_message_passing(g, w, x, backend="fast")


# ---- determinism ---------------------------------------------------------------------------------
def _run_plain(g, w, x, cot):
    out = edge_message_passing(g, w, x, backend="fused")
    return (out,) + torch.autograd.grad(out, (w, x), cot)


@pytest.mark.parametrize("F", [1, 4, 9])
def test_bitwise_deterministic_across_runs_and_threads(F):
    g = random_graph(3000, 3000, 90000, seed=6)
    gen = torch.Generator().manual_seed(0)
    w = torch.randn(g.num_edges, generator=gen).requires_grad_()
    x = torch.randn(3000, F, generator=gen).requires_grad_()
    cot = torch.randn(3000, F, generator=gen)
    n0 = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = _run_plain(g, w, x, cot)
        torch.set_num_threads(2)
        two = [_run_plain(g, w, x, cot) for _ in range(2)]
    finally:
        torch.set_num_threads(n0)
    for run in two:
        for a, b in zip(one, run):
            assert torch.equal(a, b)


# ---- edge-MLP variant ----------------------------------------------------------------------------
def make_mlp(g, F, H, L, dtype=torch.float64, seed=0, bias=True, out_2d=False, frames_dim=True):
    gen = torch.Generator().manual_seed(seed)

    def r(*s, scale=1.0):
        return (scale * torch.randn(*s, generator=gen, dtype=torch.float64)).to(dtype).requires_grad_()

    shape_a = (F, g.num_dst, H) if frames_dim else (g.num_dst, H)
    shape_b = (F, g.num_src, H) if frames_dim else (g.num_src, H)
    w = r(g.num_edges)
    a, b = r(*shape_a, scale=0.7), r(*shape_b, scale=0.7)
    hws = [r(H, H, scale=H**-0.5) for _ in range(L)]
    hbs = [r(H, scale=0.1) for _ in range(L)]
    ow = r(1, H, scale=H**-0.5) if out_2d else r(H, scale=H**-0.5)
    ob = r(1, scale=0.1) if bias else None
    return [w, a, b, hws, hbs, ow, ob]


def flat(args):
    w, a, b, hws, hbs, ow, ob = args
    return [w, a, b, *hws, *hbs, ow] + ([ob] if ob is not None else [])


def mlp_call(g, args, backend):
    return edge_mlp_message_passing(g, *args, backend=backend)


@pytest.mark.parametrize("index_dtype", [torch.int32, torch.int64])
@pytest.mark.parametrize("F,H,L", [(1, 8, 1), (2, 16, 2), (3, 5, 0), (2, 80, 1)])
def test_mlp_float64_matches_reference(index_dtype, F, H, L):
    g = random_graph(40, 35, 300, seed=H + L, index_dtype=index_dtype)
    args = make_mlp(g, F, H, L, seed=F * 10 + L)
    cot = torch.randn(g.num_dst, F, dtype=torch.float64)
    out = mlp_call(g, args, "fused")
    ref = mlp_call(g, args, "reference")
    assert out.shape == (g.num_dst, F)
    assert rel_err(out, ref) < 1e-10
    gf = torch.autograd.grad(out, flat(args), cot)
    gr = torch.autograd.grad(ref, flat(args), cot)
    for i, (p, q) in enumerate(zip(gf, gr)):
        assert rel_err(p, q) < 1e-10, i


def test_mlp_float32_matches_float64_reference():
    g = random_graph(200, 180, 5000, seed=1)
    args64 = make_mlp(g, 2, 80, 1, seed=3)
    args32 = make_mlp(g, 2, 80, 1, seed=3, dtype=torch.float32)
    # seeded: with the global RNG the scalar out_bias gradient (a sum of ~10^4 terms of both signs)
    # reached 8e-5 relative error for some cotangents, so the test failed depending on test order
    cot = torch.randn(g.num_dst, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    out = mlp_call(g, args32, "fused")
    ref = edge_mlp_messages_reference(g.src, g.dst, *args64)
    assert out.dtype == torch.float32 and rel_err(out, ref) < 1e-5
    gf = torch.autograd.grad(out, flat(args32), cot.float())
    gr = torch.autograd.grad(ref, flat(args64), cot)
    for i, (p, q) in enumerate(zip(gf, gr)):
        # scalar sums are compared on the scale of their terms (the out_weight gradient's)
        scale = gr[-2].abs().max() if p.numel() == 1 else q.abs().max()
        assert (p.double() - q.double()).abs().max().item() < 1e-5 * scale.item(), i


def test_mlp_gradcheck_float64():
    g = random_graph(5, 4, 12, seed=8)
    args = make_mlp(g, 2, 4, 1, seed=2)
    hws, hbs = args[3], args[4]

    def fn(w, a, b, hw0, hb0, ow, ob):
        return edge_mlp_message_passing(g, w, a, b, [hw0], [hb0], ow, ob, backend="fused")

    assert torch.autograd.gradcheck(fn, (args[0], args[1], args[2], hws[0], hbs[0], args[5], args[6]))


def test_mlp_shapes_and_options():
    g = random_graph(30, 25, 200, seed=9)
    # 2-D a/b (one frame), out_weight [1, H], no out_bias
    args = make_mlp(g, 1, 6, 2, bias=False, out_2d=True, frames_dim=False)
    out = mlp_call(g, args, "fused")
    ref = mlp_call(g, args, "reference")
    assert out.shape == (25, 1) and rel_err(out, ref) < 1e-12
    gf = torch.autograd.grad(out.sum(), flat(args))
    gr = torch.autograd.grad(ref.sum(), flat(args))
    assert all(rel_err(p, q) < 1e-10 for p, q in zip(gf, gr))
    # only the edge weights require grad
    w, a, b, hws, hbs, ow, ob = make_mlp(g, 2, 6, 1)
    args = [w, a.detach(), b.detach(), [h.detach() for h in hws], [h.detach() for h in hbs], ow.detach(), ob.detach()]
    (d_w,) = torch.autograd.grad(mlp_call(g, args, "fused").sum(), (w,))
    (r_w,) = torch.autograd.grad(mlp_call(g, args, "reference").sum(), (w,))
    assert rel_err(d_w, r_w) < 1e-12


def test_mlp_empty_graph_and_isolated_nodes():
    g = EdgeGraph(torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long), 3, 4)
    args = make_mlp(g, 2, 5, 1)
    out = mlp_call(g, args, "fused")
    assert out.shape == (4, 2) and bool((out == 0).all())
    grads = torch.autograd.grad(out.sum(), flat(args), allow_unused=True)
    assert all(gr is None or bool((gr == 0).all()) for gr in grads)


def test_mlp_bad_inputs_raise():
    g = random_graph(6, 5, 20, seed=0)
    w, a, b, hws, hbs, ow, ob = make_mlp(g, 2, 4, 1)
    with pytest.raises(ValueError, match=r"a_dst must be \[F, num_dst, H\]"):
        edge_mlp_message_passing(g, w, a[:, :4], b, hws, hbs, ow, ob)
    with pytest.raises(ValueError, match=r"b_src must be \[F, num_src, H\] = \[2, 6, 4\]"):
        edge_mlp_message_passing(g, w, a, b[:1], hws, hbs, ow, ob)
    with pytest.raises(ValueError, match=r"hidden_weights\[0\] must be \[H, H\]"):
        edge_mlp_message_passing(g, w, a, b, [hws[0][:3]], hbs, ow, ob)
    with pytest.raises(ValueError, match="same length"):
        edge_mlp_message_passing(g, w, a, b, hws, [], ow, ob)
    with pytest.raises(ValueError, match="out_weight must be"):
        edge_mlp_message_passing(g, w, a, b, hws, hbs, ow[:3], ob)
    with pytest.raises(ValueError, match="out_bias must hold one value"):
        edge_mlp_message_passing(g, w, a, b, hws, hbs, ow, torch.zeros(2, dtype=torch.float64))
    with pytest.raises(TypeError, match=r"hidden_biases\[0\] has dtype torch.float32"):
        edge_mlp_message_passing(g, w, a, b, hws, [hbs[0].float()], ow, ob)
    with pytest.raises(ValueError, match=r"edge_weight must be \[E\]"):
        edge_mlp_message_passing(g, w[:3], a, b, hws, hbs, ow, ob)


def test_mlp_bitwise_deterministic_across_runs_and_threads():
    g = random_graph(600, 600, 12000, seed=10)
    args = make_mlp(g, 2, 16, 1, dtype=torch.float32, seed=4)
    cot = torch.randn(600, 2)

    def run():
        out = mlp_call(g, args, "fused")
        return (out,) + torch.autograd.grad(out, flat(args), cot)

    n0 = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = run()
        torch.set_num_threads(2)
        two = [run() for _ in range(2)]
    finally:
        torch.set_num_threads(n0)
    for r in two:
        for p, q in zip(one, r):
            assert torch.equal(p, q)


def test_flyvis_a_per_node_factorisation_is_exact():
    """Model A: per-node g_phi followed by the op equals the per-edge MLP + index_add_ reference."""
    g = random_graph(50, 50, 600, seed=11)
    torch.manual_seed(0)
    g_phi = torch.nn.Sequential(
        torch.nn.Linear(3, 16), torch.nn.ReLU(), torch.nn.Linear(16, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1)
    ).double()
    v = torch.randn(50, 2, dtype=torch.float64)  # two frames
    emb = torch.randn(50, 2, dtype=torch.float64)
    w = torch.randn(600, dtype=torch.float64)
    h = torch.stack([g_phi(torch.cat([v[:, f : f + 1], emb], 1))[:, 0] ** 2 for f in range(2)], 1)
    fused = edge_message_passing(g, w, h, backend="fused")
    src, dst = g.src.long(), g.dst.long()
    per_edge = torch.stack(
        [
            torch.zeros(50, dtype=torch.float64).index_add_(
                0, dst, w * g_phi(torch.cat([v[src, f : f + 1], emb[src]], 1))[:, 0] ** 2
            )
            for f in range(2)
        ],
        1,
    )
    assert rel_err(fused, per_edge) < 1e-12


# ---- graph integrity: the kernels never see user-editable index arrays ---------------------------
def _corruptions():
    """In-place edits a user could make to the public fields (the fuzz run's crashes)."""
    return {
        "rowptr_decreasing": lambda g: g.rowptr.copy_(g.rowptr.flip(0)),
        "col0_huge": lambda g: g.col.__setitem__(0, 10**6),
        "perm_negative": lambda g: g.perm.fill_(-5),
        "col_t_huge": lambda g: g.col_t.fill_(10**6),
        "perm_t_negative": lambda g: g.perm_t.fill_(-5),
        "rowptr_t_via_data": lambda g: g.rowptr_t.data.fill_(10**6),
        "src_via_numpy": lambda g: g.src.numpy().fill(4),
    }


@pytest.mark.parametrize("what", list(_corruptions()))
def test_editing_graph_fields_cannot_reach_the_kernels(what):
    g = random_graph(7, 6, 40, seed=2)
    gen = torch.Generator().manual_seed(0)
    w = torch.randn(g.num_edges, generator=gen, dtype=torch.float64, requires_grad=True)
    x = torch.randn(7, 3, generator=gen, dtype=torch.float64, requires_grad=True)
    cot = torch.randn(6, 3, generator=gen, dtype=torch.float64)
    args = make_mlp(g, 2, 4, 1, seed=1)
    before = [getattr(g, k).clone() for k in ("src", "dst", "rowptr", "col", "perm", "rowptr_t", "col_t", "perm_t")]
    ref = edge_message_passing(g, w, x, backend="reference")
    ref_g = torch.autograd.grad(ref, (w, x), cot)
    ref_mlp = mlp_call(g, args, "reference")
    _corruptions()[what](g)
    after = [getattr(g, k) for k in ("src", "dst", "rowptr", "col", "perm", "rowptr_t", "col_t", "perm_t")]
    assert all(torch.equal(a, b) for a, b in zip(before, after)), "fields must return copies"
    for backend in ("fused", "reference"):
        out = edge_message_passing(g, w, x, backend=backend)
        assert rel_err(out, ref) < 1e-12
        assert all(rel_err(p, q) < 1e-12 for p, q in zip(torch.autograd.grad(out, (w, x), cot), ref_g))
        assert rel_err(mlp_call(g, args, backend), ref_mlp) < 1e-12


def test_graph_attributes_are_read_only():
    g = random_graph(5, 4, 10, seed=0)
    for name in ("src", "dst", "rowptr", "col", "perm", "rowptr_t", "col_t", "perm_t", "num_src", "num_dst"):
        with pytest.raises(AttributeError):
            setattr(g, name, torch.zeros(3, dtype=torch.long))


def test_graph_pickle_deepcopy_and_to_keep_the_layout():
    import copy
    import pickle

    g = random_graph(9, 8, 50, seed=3, index_dtype=torch.int32)
    for h in (copy.deepcopy(g), pickle.loads(pickle.dumps(g)), g.to("cpu")):
        for k in ("src", "dst", "rowptr", "col", "perm", "rowptr_t", "col_t", "perm_t"):
            assert torch.equal(getattr(h, k), getattr(g, k)), k
        assert (h.num_src, h.num_dst, h.num_duplicate_pairs) == (g.num_src, g.num_dst, g.num_duplicate_pairs)


def test_csr_graph_checks_every_array_once():
    """The compiled holder validates the six arrays once (O(E)); the EdgeGraph keeps private copies
    (editing its public fields changes nothing), and the registered op checks sizes, dtypes and devices."""
    C = eirnn_fast._ext._C
    g = random_graph(6, 5, 20, seed=4)
    ok = dict(
        rowptr=g.rowptr,
        col=g.col,
        perm=g.perm,
        rowptr_t=g.rowptr_t,
        col_t=g.col_t,
        perm_t=g.perm_t,
        num_src=6,
        num_dst=5,
    )
    C.CsrGraph(**ok)

    def bad(**change):
        return {**ok, **change}

    cases = [
        (bad(rowptr=g.rowptr.flip(0)), r"rowptr\[0\] must be 0"),
        (bad(rowptr=torch.cat([g.rowptr[:1], g.rowptr[-1:], g.rowptr[2:]])), "non-decreasing"),
        (bad(rowptr=g.rowptr[:-1]), "rowptr must have 6 entries"),
        (bad(col=torch.full_like(g.col, 10**6)), r"col holds indices outside \[0, 6\)"),
        (bad(perm=torch.full_like(g.perm, -5)), r"perm holds edge ids outside"),
        (bad(perm=torch.zeros_like(g.perm)), "perm must be a permutation"),
        (bad(col_t=torch.full_like(g.col_t, 5)), r"col_t holds indices outside \[0, 5\)"),
        (bad(col_t=g.col_t.flip(0)), "describe different edges"),
        (bad(perm_t=g.perm_t.int()), "perm_t has dtype"),
        (bad(num_dst=7), "rowptr must have 8 entries"),
    ]
    for kwargs, match in cases:
        with pytest.raises((ValueError, TypeError), match=match):
            C.CsrGraph(**kwargs)
    csr = C.CsrGraph(**ok)
    csr.col.fill_(10**6)  # a copy
    g.col.fill_(10**6)  # a copy too
    ref = edge_message_passing(g, torch.ones(20), torch.ones(6, 1), backend="reference")
    assert torch.equal(edge_message_passing(g, torch.ones(20), torch.ones(6, 1), backend="fused"), ref)
    spmm = torch.ops.eirnn_fast.edge_spmm_fwd
    arrays = g._arrays
    assert torch.equal(spmm(*arrays, torch.ones(20), torch.ones(6, 1)), ref)
    with pytest.raises(RuntimeError, match="x must have the graph's num_src = 6 rows"):
        spmm(*arrays, torch.ones(20), torch.ones(2, 1))
    with pytest.raises(RuntimeError, match="weight must have the graph's E = 20"):
        spmm(*arrays, torch.ones(3), torch.ones(6, 1))
    with pytest.raises(ValueError, match="perm must have 20 entries"):
        spmm(*arrays[:2], arrays[2][:5], *arrays[3:], torch.ones(20), torch.ones(6, 1))
    with pytest.raises(TypeError, match="perm_t has dtype"):
        spmm(
            *arrays[:5],
            arrays[5].int() if arrays[5].dtype == torch.long else arrays[5].long(),
            torch.ones(20),
            torch.ones(6, 1),
        )


# ---- edge-MLP: NaN / inf exactly where the reference puts them -----------------------------------
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("L", [0, 1, 2])
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_mlp_nonfinite_placement_matches_reference(dtype, L, bad):
    """The fused kernel skipped products with exact zeros (ReLU sparsity) and masked the ReLU
    gradient where its output is NaN: with a NaN/inf weight or activation the reference's
    0 * inf = NaN was missing, so the output and gradients had fewer NaN."""
    g = random_graph(7, 6, 30, seed=L)
    n_inputs = len(flat(make_mlp(g, 2, 4, L, dtype=dtype, seed=L)))
    cot = torch.randn(6, 2, dtype=dtype, generator=torch.Generator().manual_seed(5))
    for which in range(n_inputs):
        res = {}
        for backend in ("fused", "reference"):
            args = make_mlp(g, 2, 4, L, dtype=dtype, seed=L)
            with torch.no_grad():
                flat(args)[which].view(-1)[0] = bad
            out = mlp_call(g, args, backend)
            res[backend] = [out.detach(), *torch.autograd.grad(out, flat(args), cot)]
        for k, (f, r) in enumerate(zip(res["fused"], res["reference"])):
            assert torch.equal(f.isnan(), r.isnan()) and torch.equal(f.isinf(), r.isinf()), (which, k)
            fin = torch.isfinite(r)
            assert torch.allclose(f[fin], r[fin], rtol=1e-4, atol=1e-5), (which, k)
