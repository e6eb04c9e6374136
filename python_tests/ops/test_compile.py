"""Issue 16: the fused ops are registered operators: opcheck, torch.compile(fullgraph=True) and
torch.export (CPU; the aot_eager backend keeps CI within its 2 cores, inductor lives in bench/)."""

import io
import sys
import warnings
from pathlib import Path

import pytest
import torch
from testutils import requires_compiled

from eirnn_fast.ops import EdgeGraph, _library

pytestmark = requires_compiled

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from compile_cases import make_cases  # noqa: E402


def _r(*shape, grad=False, gen=None):
    return torch.randn(*shape, dtype=torch.float64, generator=gen).requires_grad_(grad)


def _op_samples():
    """(op name, args) covering every registered op; forward ops with inputs that require grad."""
    g = torch.Generator().manual_seed(0)
    B, T, N = 2, 4, 5
    drive, x0, w = _r(B, T, N, grad=True, gen=g), _r(B, N, grad=True, gen=g), _r(N, N, grad=True, gen=g)
    alpha = torch.rand(N, dtype=torch.float64, generator=g).requires_grad_()
    states = torch.ops.eirnn_fast.ei_rnn_scan_fwd(drive.detach(), x0.detach(), w.detach(), alpha.detach())
    scale, base = torch.tensor(1.3, dtype=torch.float64), torch.tensor(0.2, dtype=torch.float64)
    gs = _r(B, T, N, gen=g)
    graph = EdgeGraph(torch.randint(0, 7, (30,), generator=g), torch.randint(0, 6, (30,), generator=g), 7, 6,
                      on_duplicate="ignore")  # fmt: skip
    csr = graph._arrays
    ew, xv, gmp = _r(30, grad=True, gen=g), _r(7, 3, grad=True, gen=g), _r(6, 3, gen=g)
    F, H, L = 2, 4, 1
    a, b = _r(F, 6, H, grad=True, gen=g), _r(F, 7, H, grad=True, gen=g)
    hw, hb, ow, ob = (
        _r(L, H, H, grad=True, gen=g),
        _r(L, H, grad=True, gen=g),
        _r(H, grad=True, gen=g),
        _r(1, grad=True, gen=g),
    )
    mlp = (ew, a, b, hw, hb, ow, ob)
    det = [t.detach() for t in mlp]
    C = torch.rand(2, 4, 5, dtype=torch.float64, generator=g).requires_grad_()
    log_a, log_b = (
        torch.full((2, 4), -torch.log(torch.tensor(4.0)).item(), dtype=torch.float64),
        torch.full((2, 5), -torch.log(torch.tensor(5.0)).item(), dtype=torch.float64),
    )
    eps = torch.full((2,), 0.5, dtype=torch.float64)
    _, gpot, _, _, _ = torch.ops.eirnn_fast.sinkhorn_solve(C.detach(), log_a, log_b, eps, eps, 1.0, 200, 1e-9)
    return [
        ("ei_rnn_scan_fwd", (drive, x0, w, alpha)),
        ("ei_rnn_scan_bwd", (gs, x0.detach(), w.detach(), alpha.detach(), states, True, True)),
        ("ei_rnn_scan_bwd", (gs, x0.detach(), w.detach(), alpha.detach(), states, False, False)),
        ("ei_rates_fwd", (states.clone().requires_grad_(), x0, scale.clone().requires_grad_(), base)),
        ("ei_rates_bwd", (gs, states, x0.detach(), scale, base)),
        ("noise_add_", (torch.zeros(3, 4, dtype=torch.float64), torch.tensor(0.5, dtype=torch.float64), 7)),
        ("noise_dot", (gs, 7)),
        ("edge_spmm_fwd", (*csr, ew, xv)),
        ("edge_spmm_bwd", (*csr, ew.detach(), xv.detach(), gmp, True, True)),
        ("edge_spmm_bwd", (*csr, ew.detach(), xv.detach(), gmp, True, False)),
        ("edge_mlp_fwd", (*csr, *mlp)),
        ("edge_mlp_bwd", (*csr, *det, _r(6, F, gen=g), True, True, True, True)),
        ("edge_mlp_bwd", (*csr, *det, _r(6, F, gen=g), False, True, False, False)),
        ("sinkhorn_solve", (C, log_a, log_b, eps, eps, 1.0, 200, 1e-9)),
        ("sinkhorn_plan", (C.detach(), log_a, log_b, gpot, eps)),
    ]


CUDA_OPS = {"ei_rnn_scan_fwd", "ei_rnn_scan_bwd", "edge_spmm_fwd", "edge_spmm_bwd", "sinkhorn_solve", "sinkhorn_plan"}


def test_kernels_registered_per_dispatch_key():
    """Every op has a CPU kernel; the CUDA key holds exactly the ops with a CUDA kernel, when built with CUDA."""
    from eirnn_fast import _ext

    has = torch._C._dispatch_has_kernel_for_dispatch_key
    for name in _library.OP_NAMES:
        assert has(f"eirnn_fast::{name}", "CPU"), name
        assert has(f"eirnn_fast::{name}", "CUDA") == (_ext.cuda_kernels() and name in CUDA_OPS), name


def test_every_op_has_a_sample():
    assert sorted({name for name, _ in _op_samples()}) == sorted(_library.OP_NAMES)


@pytest.mark.parametrize("i", range(len(_op_samples())))
def test_opcheck(i):
    name, args = _op_samples()[i]
    result = torch.library.opcheck(_library.op(name), args)
    assert all(v == "SUCCESS" for v in result.values()), (name, result)


def test_double_backward_still_refused():
    drive = _r(2, 3, 4, grad=True)
    out = torch.ops.eirnn_fast.ei_rnn_scan_fwd(drive, _r(2, 4), _r(4, 4, grad=True), torch.rand(4, dtype=torch.float64))
    with pytest.raises(RuntimeError, match="double backward is not supported by the fused op ei_rnn_scan"):
        torch.autograd.grad(out.square().sum(), drive, create_graph=True)


def _grads(out, module, args):
    leaves = [t for t in args if t.requires_grad] + (list(module.parameters()) if module is not None else [])
    if not leaves or not out.requires_grad:
        return []
    return torch.autograd.grad(out.sum(), leaves, allow_unused=True)


CASES = list(make_cases().keys())
# the default noise draws differently compiled and eager: test_fullgraph_compile_default_noise_draws_randn
SAME_NUMBERS = [n for n in CASES if n != "EIRNN loss (default noise)"]


@pytest.mark.parametrize("name", SAME_NUMBERS)
def test_fullgraph_compile_matches_eager(name):
    """torch.compile(fullgraph=True) captures forward + backward with no graph break (it raises
    otherwise) and gives the eager numbers."""
    fn, args, module = make_cases()[name]
    args = [a.clone().requires_grad_(module is None) for a in args]
    torch._dynamo.reset()
    compiled = torch.compile(fn, fullgraph=True, backend="aot_eager")
    with warnings.catch_warnings():
        # an op without an autograd formula would warn (torch's autograd fallback) and give no gradient
        warnings.filterwarnings("error", message=".*autograd kernel was not registered.*")
        out_c = compiled(*args)
        grads_c = _grads(out_c, module, args)
    out_e = fn(*args)
    grads_e = _grads(out_e, module, args)
    torch.testing.assert_close(out_c, out_e, rtol=1e-10, atol=1e-12)
    assert len(grads_c) == len(grads_e) > 0
    for gc, ge in zip(grads_c, grads_e):
        assert (gc is None) == (ge is None)
        if gc is not None:
            torch.testing.assert_close(gc, ge, rtol=1e-9, atol=1e-12)


def test_explain_counts_no_graph_break():
    from compile_cases import explain_all

    rows = explain_all()
    assert {name for name, *_ in rows} == set(CASES)
    for name, graphs, breaks, reasons in rows:
        assert (graphs, breaks) == (1, 0), (name, reasons)


class _Forward(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, u):
        return self.model(u, noise=False)


def test_export_round_trip_eirnn_forward():
    _, args, model = make_cases()["EIRNN loss (noise=False)"]
    (u,) = args
    ep = torch.export.export(_Forward(model), (u,))
    targets = {str(n.target) for n in ep.graph.nodes if n.op == "call_function"}
    assert "eirnn_fast.ei_rnn_scan_fwd.default" in targets and "eirnn_fast.ei_rates_fwd.default" in targets
    buf = io.BytesIO()
    torch.export.save(ep, buf)
    buf.seek(0)
    loaded = torch.export.load(buf)
    u2 = torch.rand_like(u)  # other values, same shape
    for x in (u, u2):
        rates_l, out_l = loaded.module()(x)
        rates_e, out_e = model(x, noise=False)
        torch.testing.assert_close(rates_l, rates_e, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(out_l, out_e, rtol=1e-12, atol=1e-12)


def test_fullgraph_compile_default_noise_draws_randn():
    """Under torch.compile the model's default noise is torch.randn (the counter draws' seed would be
    read on the host): the compiled loss equals eager with those draws passed explicitly."""
    _, (u, xi), model = make_cases()["EIRNN loss (explicit noise)"]

    def loss(u):
        rates, outputs = model(u)
        return rates.square().mean() + outputs.square().mean()

    torch._dynamo.reset()
    compiled = torch.compile(loss, fullgraph=True, backend="aot_eager")
    torch.manual_seed(11)
    out_c = compiled(u)
    torch.manual_seed(11)
    xi = torch.randn(xi.shape, dtype=u.dtype)
    rates, outputs = model(u, noise=xi)
    torch.testing.assert_close(out_c, rates.square().mean() + outputs.square().mean(), rtol=1e-10, atol=1e-12)
    torch.manual_seed(11)
    assert not torch.equal(loss(u), out_c)  # eager: the counter-based draws, another stream
