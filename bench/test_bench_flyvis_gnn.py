"""FlyVis GNN training iteration at the connectome's shape: per-node fused vs per-edge reference.

Graph: the seeded synthetic graph of ``test_bench_message_passing`` (13,741 nodes, 434,112 unique
edges, heavy-tailed in-degree). Model: ``FlyVisGNN`` variant A, hidden 80, 3 layers, embedding 2,
batch 2 frames. One iteration = what ``train_flyvis_gnn`` does per step: one-step loss
``||f - y||_2`` + all regularisers with the seed-004 locked coefficients (W L1, g_phi/f_theta weight
L1/L2, g_phi diff and norm) + backward + Adam step. Variants: ``backend="auto"`` (g_phi per node +
fused sparse aggregation) vs ``backend="reference"`` (gather [v_j, a_j] per edge, g_phi on B*E rows,
``index_add_``). Agreement of loss and every gradient is asserted first, then the ratio is recorded
(and asserted >= MIN_RATIO on best-of-N times, non-quick only). A second test times whole trainer
iterations (``train_flyvis_gnn``, 10 iterations, data indexing and logging included).

Run: pytest bench/test_bench_flyvis_gnn.py -q -s   (EIRNN_BENCH_QUICK=1 shrinks the graph)
"""

import numpy as np
import pytest
import torch
from benchutils import QUICK, device_name, devices, record, time_call
from test_bench_message_passing import GRAPH, E, N, connectome_like_graph

from eirnn_fast.flyvis.gnn import FlyVisGNN, GNNGraph
from eirnn_fast.flyvis.train import (
    FlyVisTrainConfig,
    annealed_coefficients,
    data_loss,
    make_optimizer,
    regularization_terms,
    train_flyvis_gnn,
)

MIN_RATIO = 5.0
REPEAT = 3 if QUICK else 5


def _graph(device):
    g = connectome_like_graph("cpu")
    return GNNGraph(n_neurons=N, src=g.src.long().numpy(), dst=g.dst.long().numpy())


def _data(T=64, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(T, N, generator=gen)
    return {"x": x, "y": torch.randn(T, N, generator=gen), "I": torch.randn(T, N, generator=gen) * 0.1}


def _step_fn(model, cfg, data, device):
    opt = make_optimizer(model, cfg)
    coeffs = annealed_coefficients(cfg, 1)  # epoch 1: every regulariser on (epoch 0 anneals the L1 terms to 0)
    xt, yt, It = (data[k].to(device) for k in ("x", "y", "I"))
    xnorm = float(1.5 * xt.std())
    k = np.array([3, 17])

    def loss_fn():
        ld = data_loss(model, xt, yt, It, k, cfg.dt, 0, 0.0)
        reg, _ = regularization_terms(model, xt[int(k[0])], xnorm, coeffs)
        return ld + reg

    def step():
        opt.zero_grad(set_to_none=True)
        loss = loss_fn()
        loss.backward()
        opt.step()
        return loss

    return loss_fn, step


@pytest.mark.parametrize("device", devices())
def test_flyvis_gnn_train_step(device):
    cfg = FlyVisTrainConfig(coeff_W_L2=2.5e-6)  # seed-004 locked values are the defaults
    graph, data = _graph(device), _data()
    models = {b: FlyVisGNN(graph, backend=b, w_init="randn_scaled", seed=0).to(device) for b in ("auto", "reference")}
    with torch.no_grad():
        models["auto"].a.normal_(1.0, 0.3)
        models["reference"].a.copy_(models["auto"].a)
    fns = {b: _step_fn(m, cfg, data, device) for b, m in models.items()}
    grads = {}
    for b, m in models.items():
        loss = fns[b][0]()
        grads[b] = (loss.detach(), torch.autograd.grad(loss, list(m.parameters())))
    torch.testing.assert_close(grads["auto"][0], grads["reference"][0], rtol=1e-5, atol=1e-5)
    for ga, gr in zip(grads["auto"][1], grads["reference"][1]):
        torch.testing.assert_close(ga, gr, rtol=1e-3, atol=1e-5 * max(1.0, float(gr.abs().max())))
    res = {"device": device_name(device), "graph": GRAPH, "N": N, "E": E, "frames": 2, "hidden": 80, "n_layers": 3}
    for b in ("auto", "reference"):
        med, best = time_call(fns[b][1], device, repeat=REPEAT, warmup=1)
        res[f"{b}_s"], res[f"{b}_best_s"] = med, best
    res["ratio"] = res["reference_s"] / res["auto_s"]
    res["ratio_best"] = res["reference_best_s"] / res["auto_best_s"]
    record("flyvis_gnn_train_step", res)
    if not QUICK:
        assert res["ratio_best"] >= MIN_RATIO, res


def test_flyvis_gnn_trainer_iterations():
    """Whole ``train_flyvis_gnn`` iterations (indexing, loss, regularisers, Adam, logging)."""
    graph, data = _graph("cpu"), _data()
    data = {k: v.numpy() for k, v in data.items()}
    n_it = 4 if QUICK else 10
    cfg = FlyVisTrainConfig(iterations_per_epoch=n_it, quiet=True, log_every=n_it, coeff_W_L2=2.5e-6)
    train_flyvis_gnn(FlyVisTrainConfig(**{**cfg.to_dict(), "iterations_per_epoch": 1, "extra": {}}), data, graph=graph)
    _, info = train_flyvis_gnn(cfg, data, graph=graph)
    res = {
        "device": device_name("cpu"),
        "graph": GRAPH,
        "N": N,
        "E": E,
        "frames": 2,
        "iterations": n_it,
        "s_per_iteration": info["s_per_iteration"],
    }
    record("flyvis_gnn_trainer", res)
