"""A small synthetic FlyVis-like ground truth for tests, demos and benchmarks of the GNN.

Random sparse graph, neurons in a few types with per-type tau and V_rest, one signed weight per
edge (sign fixed by the source type, Dale-like), simulated with the FlyVis dynamics

    tau_i dv_i/dt = -v_i + V_rest_i + sum_j W_ij ReLU(v_j) + I_i

by explicit Euler exactly like the reference generator: the state x[t] is stored before the update,
the target y[t] is the clean right-hand side at x[t], and
``x[t+1] = x[t] + dt * y[t] + noise_model_level * N(0, 1)`` (noise not scaled by sqrt(dt)).
The stimulus drives the "input" type (type 0, the photoreceptor stand-in) only.
"""

from __future__ import annotations

from typing import Dict

import numpy as np

from eirnn_fast.flyvis.gnn import GNNGraph


def make_toy_ground_truth(
    n_neurons: int = 200, n_types: int = 5, mean_in_degree: int = 10, seed: int = 0, w_scale: float = 0.6
):
    """Random graph + parameters. Returns ``(graph, params)`` with params ``tau [N]``, ``V_rest [N]``,
    ``W [E]`` (float64 numpy), per-type values broadcast to neurons."""
    rng = np.random.default_rng(seed)
    types = np.sort(rng.integers(0, n_types, n_neurons))
    types[:n_types] = np.arange(n_types)  # every type present
    types = np.sort(types)
    n_edges = n_neurons * mean_in_degree
    keys = np.unique(rng.integers(0, n_neurons, n_edges) * n_neurons + rng.integers(0, n_neurons, n_edges))
    src, dst = keys % n_neurons, keys // n_neurons
    keep = src != dst
    src, dst = src[keep], dst[keep]
    order = rng.permutation(src.size)
    src, dst = src[order], dst[order]
    tau_t = rng.uniform(0.05, 0.25, n_types)
    vrest_t = rng.uniform(-0.5, 0.5, n_types)
    sign_t = np.where(rng.random(n_types) < 0.6, 1.0, -1.0)
    indeg = np.bincount(dst, minlength=n_neurons).clip(min=1)
    W = sign_t[types[src]] * rng.lognormal(0.0, 0.5, src.size) * w_scale / np.sqrt(indeg[dst])
    graph = GNNGraph(
        n_neurons=n_neurons,
        src=src.astype(np.int64),
        dst=dst.astype(np.int64),
        cell_type_index=types.astype(np.int64),
        cell_type=[f"T{k}" for k in range(n_types)],
    )
    params = {"tau": tau_t[types], "V_rest": vrest_t[types], "W": W}
    return graph, params


def toy_stimulus(graph, n_frames: int, dt: float = 0.02, seed: int = 0, amplitude: float = 1.0) -> np.ndarray:
    """Smooth random stimulus ``[T, N]`` on the type-0 neurons (sum of random sinusoids + offset)."""
    rng = np.random.default_rng(seed)
    N = graph.n_neurons
    t = np.arange(n_frames)[:, None] * dt
    I = np.zeros((n_frames, N))
    inp = np.flatnonzero(np.asarray(graph.cell_type_index) == 0)
    for _ in range(4):
        f = rng.uniform(0.2, 3.0, inp.size)
        ph = rng.uniform(0, 2 * np.pi, inp.size)
        I[:, inp] += amplitude / 4 * np.sin(2 * np.pi * f * t + ph)
    I[:, inp] += amplitude * 0.5 * rng.standard_normal(inp.size)
    return I


def simulate_toy(
    graph,
    params: Dict[str, np.ndarray],
    stimulus: np.ndarray,
    dt: float = 0.02,
    noise_model_level: float = 0.05,
    seed: int = 0,
    v0=None,
) -> Dict[str, np.ndarray]:
    """Euler-simulate the ground truth. Returns ``x [T, N]`` voltages, ``y [T, N]`` clean dv/dt at
    ``x``, ``I [T, N]`` stimulus (float32)."""
    rng = np.random.default_rng(seed)
    src, dst = np.asarray(graph.src), np.asarray(graph.dst)
    tau, vrest, W = params["tau"], params["V_rest"], params["W"]
    T, N = stimulus.shape
    v = vrest.copy() if v0 is None else np.asarray(v0, dtype=np.float64).copy()
    x = np.empty((T, N))
    y = np.empty((T, N))
    for t in range(T):
        msg = np.bincount(dst, weights=W * np.maximum(v[src], 0.0), minlength=N)
        dv = (-v + vrest + msg + stimulus[t]) / tau
        x[t], y[t] = v, dv
        v = v + dt * dv + noise_model_level * rng.standard_normal(N)
    return {"x": x.astype(np.float32), "y": y.astype(np.float32), "I": stimulus.astype(np.float32)}


def make_toy_dataset(
    n_neurons: int = 200,
    n_types: int = 5,
    n_frames: int = 2000,
    n_test_frames: int = 400,
    dt: float = 0.02,
    noise_model_level: float = 0.05,
    seed: int = 0,
    mean_in_degree: int = 10,
):
    """Graph, ground truth and train/test data in the dict layout the trainer loads
    (``x, y, I, x_test, I_test, src, dst, n_neurons, cell_type_index, tau, V_rest, W, dt``).
    The test split is a noise-free simulation on a fresh stimulus."""
    graph, params = make_toy_ground_truth(n_neurons, n_types, mean_in_degree, seed)
    train = simulate_toy(graph, params, toy_stimulus(graph, n_frames, dt, seed + 1), dt, noise_model_level, seed + 2)
    test = simulate_toy(graph, params, toy_stimulus(graph, n_test_frames, dt, seed + 3), dt, 0.0, seed + 4)
    data = {
        **train,
        "x_test": test["x"],
        "I_test": test["I"],
        "src": graph.src,
        "dst": graph.dst,
        "n_neurons": np.int64(graph.n_neurons),
        "cell_type_index": graph.cell_type_index,
        "tau": params["tau"],
        "V_rest": params["V_rest"],
        "W": params["W"],
        "dt": np.float64(dt),
    }
    return graph, params, data
