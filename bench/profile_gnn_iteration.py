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

import numpy as np
import torch
from torch.profiler import ProfilerActivity, profile, record_function

from eirnn_fast.flyvis import load_connectome
from eirnn_fast.flyvis.gnn import FlyVisGNN, GNNGraph
from eirnn_fast.flyvis.train import FlyVisTrainConfig, annealed_coefficients, data_loss, make_optimizer
from eirnn_fast.flyvis.train import regularization_terms as regs

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


def iteration(cfg, model, opt, coeffs, x, y, I, xnorm, k):
    with record_function("data_loss"):
        ld = data_loss(model, x, y, I, k, cfg.dt, 0, 0.0)
    with record_function("regularisers"):
        reg, _ = regs(model, x[int(k[-1])], xnorm, coeffs, cfg.W_L2_with_L1)
    loss = ld + reg
    with record_function("backward"):
        opt.zero_grad(set_to_none=True)
        loss.backward()
    with record_function("optimizer"):
        opt.step()


def profile_stages(extent: int = 8, iterations: int = 20, warmup: int = 3) -> dict:
    cfg, model, x, y, I = build(extent)
    opt = make_optimizer(model, cfg)
    coeffs = annealed_coefficients(cfg, 1)
    xnorm = float(1.5 * x.std())
    rng = np.random.RandomState(0)
    ks = rng.randint(0, x.shape[0] - 2, size=(warmup + iterations, cfg.batch_size))
    for i in range(warmup):
        iteration(cfg, model, opt, coeffs, x, y, I, xnorm, ks[i])
    t0 = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for i in range(warmup, warmup + iterations):
            iteration(cfg, model, opt, coeffs, x, y, I, xnorm, ks[i])
    wall = (time.perf_counter() - t0) / iterations * 1e3
    totals = {e.key: e.cpu_time_total / 1e3 / iterations for e in prof.key_averages() if e.key in STAGES}
    return {"wall_ms_per_iteration": wall, **{s: totals.get(s, float("nan")) for s in STAGES}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--extent", type=int, default=8)
    ap.add_argument("--iterations", type=int, default=20)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    r = profile_stages(args.extent, args.iterations)
    print(f"FlyVis GNN iteration, extent {args.extent}, {args.threads} thread(s): {r['wall_ms_per_iteration']:.1f} ms")
    print("| stage | ms / iteration | share |")
    print("|---|---|---|")
    for s in STAGES:
        print(f"| {s} | {r[s]:.1f} | {100 * r[s] / r['wall_ms_per_iteration']:.0f} % |")


if __name__ == "__main__":
    main()
