"""FlyVis data generation speed: the 64,000-frame extent-8 dataset (8 streams x 8,000 frames).

Measured fraction, extrapolated: each backend integrates the 8 streams together (F = 8 columns per
sparse pass) for ``FRAMES`` frames (1/32 of the dataset per stream, no steady-state pre-run, no disk
I/O); the full dataset needs 8,000 such steps plus 100 pre-run steps, so
    full_s = per_step_s * (8000 + 100).
The per-step cost is constant in time (fixed graph, fixed F), so the extrapolation is linear.
Backends: the fused ``edge_message_passing`` op when importable, the ``torch.sparse`` CSR fallback
("auto" without the op) and the ``index_add_`` reference. EIRNN_BENCH_QUICK=1: extent 2, 50 frames.
"""

import torch
from benchutils import QUICK, device_name, record, time_call

from eirnn_fast.flyvis import load_connectome, sample_parameters, simulate
from eirnn_fast.flyvis import simulator as sim

EXTENT = 2 if QUICK else 8
FRAMES = 50 if QUICK else 250
STREAMS = 8
FULL_STEPS = 64_000 // STREAMS + 100


def test_bench_flyvis_generation():
    c = load_connectome(EXTENT)
    p = sample_parameters(c, 0)
    stim = torch.rand(STREAMS, FRAMES, c.n_columns, generator=torch.Generator().manual_seed(0))
    backends = ["auto", "reference"] + (["fused"] if sim.fused_available() else [])
    # agreement first (no noise so that backends see identical trajectories)
    ref = simulate(c, p, stim[:, :20], noise_model_level=0.0, backend="reference", t_pre=0.0)
    for b in backends:
        out = simulate(c, p, stim[:, :20], noise_model_level=0.0, backend=b, t_pre=0.0)
        torch.testing.assert_close(out.x, ref.x, rtol=1e-4, atol=1e-4)
    results = {}
    for b in backends:
        med, best = time_call(lambda: simulate(c, p, stim, backend=b, t_pre=0.0), repeat=3, warmup=1)
        per_step = med / FRAMES
        results[b] = dict(
            aggregation=sim._Aggregator(c, b).name,
            measured_s=med,
            min_s=best,
            per_step_ms=1e3 * per_step,
            frames_per_s=STREAMS / per_step,
            extrapolated_64000_frames_s=per_step * FULL_STEPS,
        )
    payload = dict(
        device=device_name("cpu"),
        extent=EXTENT,
        n_neurons=c.n_neurons,
        n_edges=c.n_edges,
        streams=STREAMS,
        frames_per_stream_measured=FRAMES,
        extrapolation="per_step * (8000 + 100)",
        results=results,
    )
    if "reference" in results:
        payload["speedup_auto_vs_index_add"] = results["reference"]["measured_s"] / results["auto"]["measured_s"]
    if "fused" in results:
        payload["speedup_fused_vs_index_add"] = results["reference"]["measured_s"] / results["fused"]["measured_s"]
    record("flyvis_sim", payload)
