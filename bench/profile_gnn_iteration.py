"""Where one FlyVis GNN training iteration spends its time, stage by stage (torch.profiler).

The iteration is what ``train_flyvis_gnn`` does per step at the bench shape: the extent-8 connectome
(13,741 neurons, 434,112 edges), batch 2 frames, hidden 80, 3 layers, every regulariser on (epoch-1
coefficients), backward, Adam. Stages are ``record_function`` ranges: ``data_loss`` (g_phi per node,
message passing, f_theta, the norm), ``regularisers`` (W norms, MLP weight norms, the g_phi
monotonicity and scale terms), ``backward``, ``optimizer``. Prints a table of milliseconds per
iteration and share per stage (means over the profiled iterations).

Run: python bench/profile_gnn_iteration.py [--extent 8] [--iterations 20] [--threads 1]
"""

from __future__ import annotations

import argparse
import time
from contextlib import contextmanager

import numpy as np
import torch
from torch.profiler import ProfilerActivity, profile, record_function

from eirnn_fast.flyvis import load_connectome
from eirnn_fast.flyvis.gnn import FlyVisGNN, GNNGraph
from eirnn_fast.flyvis.train import FlyVisTrainConfig, annealed_coefficients, data_loss, make_optimizer
from eirnn_fast.flyvis.train import regularization_terms as regs
from eirnn_fast.runtime import tune_cpu_allocator

STAGES = ("data_loss", "regularisers", "backward", "optimizer")


def build(extent: int, seed: int = 0):
    con = load_connectome(extent)
    graph = GNNGraph(n_neurons=con.n_neurons, src=con.src.numpy(), dst=con.dst.numpy())
    cfg = FlyVisTrainConfig(coeff_W_L2=2.5e-6)
    model = FlyVisGNN(graph, w_init="randn_scaled", seed=seed)
    gen = torch.Generator().manual_seed(seed)
    T = 64
    x, y = torch.randn(T, con.n_neurons, generator=gen), torch.randn(T, con.n_neurons, generator=gen)
    I = 0.1 * torch.randn(T, con.n_neurons, generator=gen)
    return cfg, model, x, y, I


def iteration(cfg, model, opt, coeffs, x, y, I, xnorm, k, stage=record_function):
    """One training step; ``stage(name)`` is the context around each stage (a profiler range, or a
    wall clock)."""
    with stage("data_loss"):
        ld = data_loss(model, x, y, I, k, cfg.dt, 0, 0.0)
    with stage("regularisers"):
        reg, _ = regs(model, x[int(k[-1])], xnorm, coeffs, cfg.W_L2_with_L1)
    loss = ld + reg
    with stage("backward"):
        opt.zero_grad(set_to_none=True)
        loss.backward()
    with stage("optimizer"):
        opt.step()


def _warm_setup(extent: int, iterations: int, warmup: int):
    """The bench's model and optimizer after ``warmup`` steps, and the batches of the timed steps."""
    cfg, model, x, y, I = build(extent)
    opt = make_optimizer(model, cfg)
    coeffs = annealed_coefficients(cfg, 1)
    xnorm = float(1.5 * x.std())
    ks = np.random.RandomState(0).randint(0, x.shape[0] - 2, size=(warmup + iterations, cfg.batch_size))
    for i in range(warmup):
        iteration(cfg, model, opt, coeffs, x, y, I, xnorm, ks[i])
    return (cfg, model, opt, coeffs, x, y, I, xnorm), ks[warmup:]


def profile_stages(extent: int = 8, iterations: int = 20, warmup: int = 3) -> dict:
    state, ks = _warm_setup(extent, iterations, warmup)
    t0 = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for k in ks:
            iteration(*state, k)
    wall = (time.perf_counter() - t0) / iterations * 1e3
    totals = {e.key: e.cpu_time_total / 1e3 / iterations for e in prof.key_averages() if e.key in STAGES}
    return {"wall_ms_per_iteration": wall, **{s: totals.get(s, float("nan")) for s in STAGES}}


ALONE = ("backward of data_loss alone", "backward of regularisers alone")


def wall_stages(extent: int = 8, iterations: int = 20, warmup: int = 3) -> dict:
    """The same stages timed by the wall clock (``time.perf_counter`` around each, medians over the
    iterations), the backward also split into the data term's and the regularisers' (each run alone
    on the same batch). torch.profiler charged element-wise ops 10-20x their wall time here (a ReLU
    over [13741, 2, 80]: 10-12 ms profiled, 0.9-1.4 ms by the clock), so this is the default."""
    state, ks = _warm_setup(extent, iterations, warmup)
    cfg, model, opt, coeffs, x, y, I, xnorm = state
    times = {s: [] for s in (*STAGES, *ALONE)}

    @contextmanager
    def clock(name):
        t = time.perf_counter()
        yield
        times[name].append(time.perf_counter() - t)

    for k in ks:
        iteration(*state, k, stage=clock)
        for name, term in zip(
            ALONE,
            (
                lambda: data_loss(model, x, y, I, k, cfg.dt, 0, 0.0),
                lambda: regs(model, x[int(k[-1])], xnorm, coeffs, cfg.W_L2_with_L1)[0],
            ),
        ):
            loss = term()
            opt.zero_grad(set_to_none=True)
            with clock(name):
                loss.backward()
    out = {name: 1e3 * float(np.median(v)) for name, v in times.items()}
    out["wall_ms_per_iteration"] = sum(out[s] for s in STAGES)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--extent", type=int, default=8)
    ap.add_argument("--iterations", type=int, default=20)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--profiler", action="store_true", help="torch.profiler ranges instead of the wall clock")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    tune_cpu_allocator()  # as the CLI runs training
    r = (profile_stages if args.profiler else wall_stages)(args.extent, args.iterations)
    how = "torch.profiler" if args.profiler else "wall clock"
    print(
        f"FlyVis GNN iteration, extent {args.extent}, {args.threads} thread(s), {how}: "
        f"{r['wall_ms_per_iteration']:.1f} ms"
    )
    print("| stage | ms / iteration | share |")
    print("|---|---|---|")
    for s, v in r.items():
        if s != "wall_ms_per_iteration":
            share = f"{100 * v / r['wall_ms_per_iteration']:.0f} %" if s in STAGES else "-"
            print(f"| {s} | {v:.1f} | {share} |")


if __name__ == "__main__":
    main()
