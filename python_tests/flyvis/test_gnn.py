"""FlyVisGNN: per-node (fused) vs per-edge reference, variant B, shapes, init, rollout."""

import pytest
import torch

from eirnn_fast.flyvis.gnn import FlyVisGNN, GNNGraph
from eirnn_fast.flyvis.gnn_toy import make_toy_ground_truth


@pytest.fixture(scope="module")
def graph():
    g, _ = make_toy_ground_truth(n_neurons=60, n_types=4, mean_in_degree=6, seed=3)
    return g


def _pair(graph, variant, **kw):
    fused = FlyVisGNN(graph, variant=variant, hidden_dim=16, w_init="randn", seed=1, dtype=torch.float64, **kw)
    ref = FlyVisGNN(
        graph, variant=variant, hidden_dim=16, w_init="randn", seed=1, dtype=torch.float64, backend="reference", **kw
    )
    ref.load_state_dict(fused.state_dict())
    with torch.no_grad():  # distinct embeddings so the test sees them
        fused.a.copy_(torch.randn_like(fused.a))
        ref.a.copy_(fused.a)
    return fused, ref


@pytest.mark.parametrize("variant", ["A", "B"])
@pytest.mark.parametrize("B", [1, 3])
def test_fused_equals_per_edge_reference(graph, variant, B):
    """Model A per node == per edge (same maths; float64, only the summation order differs);
    model B fused edge MLP == per-edge reference. Forward and every parameter gradient."""
    fused, ref = _pair(graph, variant)
    gen = torch.Generator().manual_seed(B)
    v = torch.randn(graph.n_neurons, B, generator=gen, dtype=torch.float64)
    I = torch.randn(graph.n_neurons, B, generator=gen, dtype=torch.float64)
    cot = torch.randn(graph.n_neurons, B, generator=gen, dtype=torch.float64)
    outs = []
    for m in (fused, ref):
        pred, msg = m(v, I, return_msg=True)
        grads = torch.autograd.grad((pred * cot).sum(), list(m.parameters()))
        outs.append((pred, msg, grads))
    (p1, m1, g1), (p2, m2, g2) = outs
    torch.testing.assert_close(m1, m2, rtol=1e-12, atol=1e-13)
    torch.testing.assert_close(p1, p2, rtol=1e-12, atol=1e-13)
    for (name, _), a, b in zip(fused.named_parameters(), g1, g2):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12, msg=lambda s: f"grad {name}: {s}")


def test_variant_a_messages_use_source_only(graph):
    """A: g_phi sees only [v_j, a_j], so msg = A_W @ g_phi(v, a)^2 with one MLP call per node."""
    m = FlyVisGNN(graph, hidden_dim=8, w_init="randn", seed=0, dtype=torch.float64)
    v = torch.randn(graph.n_neurons, 2, dtype=torch.float64)
    h = m.g_phi_node(v)
    dense = torch.zeros(graph.n_neurons, graph.n_neurons, dtype=torch.float64)
    dense.index_put_((m.dst, m.src), m.W.detach(), accumulate=True)
    torch.testing.assert_close(m.messages(v), dense @ h, rtol=1e-12, atol=1e-12)


def test_init_modes_and_shapes(graph):
    E = graph.n_edges
    assert torch.count_nonzero(FlyVisGNN(graph, w_init="zeros").W) == 0
    w = FlyVisGNN(graph, w_init="randn_scaled", w_init_scale=2.0, seed=0).W.detach()
    assert w.shape == (E,) and 0.5 * 2 / E**0.5 < w.std() < 1.5 * 2 / E**0.5
    m = FlyVisGNN(graph, embedding_dim=3, hidden_dim=8, n_layers=4)
    assert m.a.shape == (graph.n_neurons, 3) and torch.all(m.a == 1)
    assert len(m.g_phi.layers) == 4 and m.g_phi.layers[0].in_features == 4
    assert m.f_theta.layers[0].in_features == 6
    assert m(torch.zeros(graph.n_neurons), torch.zeros(graph.n_neurons)).shape == (graph.n_neurons,)
    # same seed, same parameters
    a, b = FlyVisGNN(graph, w_init="randn", seed=5), FlyVisGNN(graph, w_init="randn", seed=5)
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.equal(p, q)


def test_bad_arguments(graph):
    with pytest.raises(ValueError, match="variant"):
        FlyVisGNN(graph, variant="C")
    with pytest.raises(ValueError, match="w_init"):
        FlyVisGNN(graph, w_init="ones")
    with pytest.raises(ValueError, match="activation"):
        FlyVisGNN(graph, activation="gelu2")
    m = FlyVisGNN(graph, hidden_dim=8)
    with pytest.raises(ValueError, match=r"\[N=60, B\]"):
        m(torch.zeros(5, 2), torch.zeros(5, 2))
    with pytest.raises(ValueError, match="fused variant-B"):
        FlyVisGNN(graph, variant="B", activation="tanh", backend="fused")(torch.zeros(60, 1), torch.zeros(60, 1))


def test_variant_b_tanh_falls_back_to_reference(graph):
    m = FlyVisGNN(graph, variant="B", activation="tanh", hidden_dim=8, w_init="randn", seed=0, dtype=torch.float64)
    r = FlyVisGNN(
        graph,
        variant="B",
        activation="tanh",
        hidden_dim=8,
        w_init="randn",
        seed=0,
        dtype=torch.float64,
        backend="reference",
    )
    v = torch.randn(60, 2, dtype=torch.float64)
    torch.testing.assert_close(m(v, v), r(v, v))


def test_rollout_matches_manual_euler(graph):
    m = FlyVisGNN(graph, hidden_dim=8, w_init="randn", seed=0, dtype=torch.float64)
    I = torch.randn(5, graph.n_neurons, dtype=torch.float64)
    v0 = torch.randn(graph.n_neurons, dtype=torch.float64)
    roll = m.rollout(v0, I, dt=0.02)
    v = v0.clone()
    with torch.no_grad():
        for t in range(1, 5):
            v = v + 0.02 * m(v, I[t - 1])
            torch.testing.assert_close(roll[t], v)


def test_graph_interface_accepts_tensors():
    g = GNNGraph(n_neurons=3, src=torch.tensor([0, 1]), dst=torch.tensor([1, 2]))
    m = FlyVisGNN(g, hidden_dim=4)
    assert m.n_edges == 2 and m(torch.zeros(3, 1), torch.zeros(3, 1)).shape == (3, 1)
