"""Double backward (create_graph=True) through a fused op raises a clear error naming the op and
the fix (backend='reference'), instead of returning a silently partial second-order gradient
(None for the inputs) or failing with "element 0 of tensors does not require grad"."""

import pytest
import torch
from testutils import requires_compiled

import eirnn_fast
from eirnn_fast.ops import (
    EdgeGraph,
    edge_message_passing,
    edge_mlp_message_passing,
    ei_rnn_rates,
    ei_rnn_scan,
    sinkhorn,
    state_noise_,
)

pytestmark = requires_compiled
MATCH = r"double backward is not supported by the fused op {}.*backend='reference'"


def _leaf(*shape, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=gen, dtype=torch.float64).requires_grad_()


def _scan(backend):
    d, x0, w, a = _leaf(2, 3, 4), _leaf(2, 4, seed=1), _leaf(4, 4, seed=2), torch.rand(4, dtype=torch.float64)
    a.requires_grad_()
    return ei_rnn_scan(d, x0, 0.3 * w, a, backend=backend), (d, x0, w, a)


def _rates(backend):
    s, x0 = _leaf(2, 3, 4), _leaf(2, 4, seed=1)
    sc, b = torch.tensor(2.0, dtype=torch.float64, requires_grad=True), torch.tensor(0.1, dtype=torch.float64)
    return ei_rnn_rates(s, x0, sc, b.requires_grad_(), backend=backend), (s, x0, sc)


def _noise(backend):
    d, std = _leaf(2, 3, 4), torch.tensor(0.5, dtype=torch.float64, requires_grad=True)
    out = state_noise_(d * 1.0, std * std, seed=3, backend=backend)
    return out * out, (d, std)


_GRAPH = EdgeGraph(torch.tensor([0, 1, 2, 2]), torch.tensor([1, 2, 0, 1]), 3, 3)


def _mp(backend):
    w, x = _leaf(4), _leaf(3, 2, seed=1)
    return edge_message_passing(_GRAPH, w, x, backend=backend), (w, x)


def _mlp(backend):
    w, a, b = _leaf(4), _leaf(2, 3, 5, seed=1), _leaf(2, 3, 5, seed=2)
    hw, hb, ow = _leaf(5, 5, seed=3), _leaf(5, seed=4), _leaf(5, seed=5)
    out = edge_mlp_message_passing(_GRAPH, w, a, b, [hw], [hb], ow, None, backend=backend)
    return out, (w, a, b, hw)


def _sinkhorn(backend):
    x, y = _leaf(2, 4, 3), _leaf(2, 5, 3, seed=1)
    return sinkhorn(x, y, eps=0.5, backend=backend), (x, y)


OPS = {
    "ei_rnn_scan": _scan,
    "ei_rnn_rates": _rates,
    "state_noise_": _noise,
    "edge_message_passing": _mp,
    "edge_mlp_message_passing": _mlp,
    "sinkhorn": _sinkhorn,
}


@pytest.mark.parametrize("op", list(OPS))
def test_create_graph_through_fused_op_raises(op):
    out, inputs = OPS[op]("fused")
    with pytest.raises(RuntimeError, match=MATCH.format(op)):
        torch.autograd.grad(out.pow(2).sum(), inputs, create_graph=True)
    # first-order gradients are unaffected
    out, inputs = OPS[op]("fused")
    assert all(g is not None for g in torch.autograd.grad(out.pow(2).sum(), inputs, allow_unused=False))


@pytest.mark.parametrize("op", ["ei_rnn_scan", "ei_rnn_rates", "edge_message_passing", "edge_mlp_message_passing"])
def test_reference_backend_gives_second_order_gradients(op):
    out, inputs = OPS[op]("reference")
    grads = torch.autograd.grad(out.pow(2).sum(), inputs, create_graph=True)
    second = torch.autograd.grad(sum(g.pow(2).sum() for g in grads), inputs, allow_unused=True)
    assert second[0] is not None and torch.isfinite(second[0]).all()


def test_model_double_backward_raises_instead_of_none():
    """The fuzz case: EIRNN(backend='fused') with create_graph=True gave None for d2/dinputs2."""
    torch.manual_seed(0)
    inputs = torch.randn(2, 5, 3, requires_grad=True)
    model = eirnn_fast.EIRNN(4, 1, 3, backend="fused")
    rates, _ = model(inputs, noise=False)
    with pytest.raises(RuntimeError, match=MATCH.format("(ei_rnn_rates|ei_rnn_scan)")):
        torch.autograd.grad(rates.sum(), inputs, create_graph=True)
    ref = eirnn_fast.EIRNN(4, 1, 3, backend="reference")
    rates, _ = ref(inputs, noise=False)
    (g,) = torch.autograd.grad(rates.pow(2).sum(), inputs, create_graph=True)
    (g2,) = torch.autograd.grad(g.pow(2).sum(), inputs)
    assert g2 is not None and torch.isfinite(g2).all()
