"""torch.compile / torch.export cases of issue 16, and a report of their graph breaks.

Each case is a function of tensors built by ``make_cases()``; ``python_tests/ops/test_compile.py``
compiles the same cases with ``fullgraph=True`` and compares them with eager. Run as a script to
print ``torch._dynamo.explain`` counts (graphs, graph breaks) per case, and with ``--inductor``
also compile every case with the inductor backend (``fullgraph=True``; minutes of C++ compilation)
and print its largest deviation from eager::

    OMP_NUM_THREADS=1 python bench/compile_cases.py [--inductor]
"""

from __future__ import annotations

import warnings

import torch

from eirnn_fast.flyvis.gnn import FlyVisGNN
from eirnn_fast.flyvis.gnn_toy import make_toy_ground_truth
from eirnn_fast.losses import trial_matching_loss
from eirnn_fast.models.eirnn import EIRNN
from eirnn_fast.ops import EdgeGraph, edge_message_passing, ei_rnn_scan, sinkhorn


def make_cases(dtype=torch.float64):
    """name -> (fn, args, module or None): each fn returns one tensor (a loss where a module is
    given: the tests backpropagate it and compare the module's gradients)."""
    gen = torch.Generator().manual_seed(0)

    def randn(*shape):
        return torch.randn(*shape, generator=gen, dtype=dtype)

    B, T, N = 3, 7, 6
    drive, x0, w = randn(B, T, N), randn(B, N), 0.3 * randn(N, N)
    alpha = torch.rand(N, generator=gen, dtype=dtype)

    def scan(drive, x0, w, alpha):
        return ei_rnn_scan(drive, x0, w, alpha)

    src = torch.randint(0, 9, (40,), generator=gen)
    dst = torch.randint(0, 8, (40,), generator=gen)
    graph = EdgeGraph(src, dst, 9, 8, on_duplicate="ignore")
    ew, xv = randn(40), randn(9, 3)

    def mp(ew, xv):
        return edge_message_passing(graph, ew, xv)

    xs, ys = randn(2, 5, 3), randn(2, 6, 3)

    def ot(x, y):
        return sinkhorn(x, y, eps=0.5, on_nonconvergence="ignore")

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.manual_seed(0)
        model = EIRNN(8, 2, 3, noise_scale=0.1).to(dtype)
    u, xi = torch.rand(B, T, 3, generator=gen, dtype=dtype), randn(B, T, 10)

    def eirnn_fwd_bwd(u, xi):
        rates, outputs = model(u, noise=xi)
        loss = rates.square().mean() + outputs.square().mean()
        return loss

    def eirnn_default_noise(u):  # compiled: torch.randn draws (eager: the counter-based draws)
        rates, outputs = model(u)
        return rates.square().mean() + outputs.square().mean()

    def eirnn_no_noise(u):
        rates, outputs = model(u, noise=False)
        loss = rates.square().mean() + outputs.square().mean()
        return loss

    target = torch.rand(6, T, 10, generator=gen, dtype=dtype) * 5

    def tm_loss(u, target):
        rates, _ = model(u, noise=False)
        loss = trial_matching_loss(rates, target, eps=0.5)
        return loss

    toy, _ = make_toy_ground_truth(n_neurons=30, n_types=3, mean_in_degree=4, seed=3)
    gnns = {v: FlyVisGNN(toy, variant=v, hidden_dim=8, w_init="randn", seed=1, dtype=dtype) for v in ("A", "B")}
    v, I, target_dv = randn(30, 4), randn(30, 4), randn(30, 4)

    def gnn_step(variant):
        gnn = gnns[variant]

        def step(v, I, target_dv):
            loss = (gnn(v, I) - target_dv).square().mean()
            return loss

        return step

    return {
        "ei_rnn_scan": (scan, (drive, x0, w, alpha), None),
        "edge_message_passing": (mp, (ew, xv), None),
        "sinkhorn": (ot, (xs, ys), None),
        "EIRNN loss (explicit noise)": (eirnn_fwd_bwd, (u, xi), model),
        "EIRNN loss (noise=False)": (eirnn_no_noise, (u,), model),
        "EIRNN loss (default noise)": (eirnn_default_noise, (u,), model),
        "trial_matching_loss of EIRNN rates": (tm_loss, (u, target), model),
        "FlyVis GNN step (variant A)": (gnn_step("A"), (v, I, target_dv), gnns["A"]),
        "FlyVis GNN step (variant B)": (gnn_step("B"), (v, I, target_dv), gnns["B"]),
    }


def explain_all():
    rows = []
    for name, (fn, args, _) in make_cases().items():
        torch._dynamo.reset()
        e = torch._dynamo.explain(fn)(*args)
        rows.append((name, e.graph_count, e.graph_break_count, [str(b.reason)[:90] for b in e.break_reasons]))
    return rows


def inductor_all():
    """name -> largest |compiled - eager| over the output and the gradients (inductor, fullgraph)."""
    out = {}
    for name, (fn, args, module) in make_cases().items():
        if name == "EIRNN loss (default noise)":  # other draws compiled (torch.randn) than eager
            continue
        torch._dynamo.reset()
        args = [a.clone().requires_grad_(module is None) for a in args]
        leaves = list(args) if module is None else list(module.parameters())
        res = []
        for f in (torch.compile(fn, fullgraph=True, backend="inductor"), fn):
            y = f(*args)
            g = torch.autograd.grad(y.sum(), leaves, allow_unused=True)
            res.append([y] + [t for t in g if t is not None])
        out[name] = max(float((a - b).detach().abs().max()) for a, b in zip(*res))
    return out


if __name__ == "__main__":
    import sys

    print(f"torch {torch.__version__}")
    print(f"{'case':45s} graphs  breaks")
    for name, graphs, breaks, reasons in explain_all():
        print(f"{name:45s} {graphs:6d}  {breaks:6d}")
        for r in reasons[:3]:
            print(f"    - {r}")
    if "--inductor" in sys.argv:
        for name, dev in inductor_all().items():
            print(f"inductor {name:45s} max |compiled - eager| = {dev:.3g}")
