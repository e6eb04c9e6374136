"""Fused E-I recurrence vs the eager reference (and torch.compile of it) at the SC training shape.

Shape: B = 835 training trials, T = 219 bins, N = 54 recorded-size and 65 padded-size networks.
Run: pytest bench/test_bench_rnn.py [--benchmark-only]   (EIRNN_BENCH_COMPILE=1 adds torch.compile,
which takes minutes to compile a 219-step loop on a CPU).
"""

import os

import pytest
import torch
from benchutils import QUICK, device_name, devices, record, sync, time_call

from eirnn_fast.ops import ei_rnn_scan
from eirnn_fast.reference import ei_rnn_scan_reference

B, T = (64, 40) if QUICK else (835, 219)
SIZES = (54, 65)
# Floors of the one-run ratio check: issue 2 asks >= 3x on the 2-core CPU and >= 20x on a GPU.
# Checked on the better of the median and the best-of-runs ratio, so that a load spike on a shared
# machine in one of the two timings does not flake the check.
MIN_RATIO = {"cpu": 3.0, "cuda": 20.0}


def make(N, device, dtype=torch.float32, seed=0):
    gen = torch.Generator().manual_seed(seed)
    drive = (0.3 * torch.randn(B, T, N, generator=gen)).to(device, dtype).requires_grad_()
    x0 = torch.randn(N, generator=gen).to(device, dtype).requires_grad_()
    w = (torch.randn(N, N, generator=gen) * 0.9 / N**0.5).to(device, dtype).requires_grad_()
    alpha = (0.2 + 0.6 * torch.rand(N, generator=gen)).to(device, dtype).requires_grad_()
    cot = torch.randn(B, T, N, generator=gen).to(device, dtype)
    return (drive, x0, w, alpha), cot


def step_fns(inputs, cot, backend):
    def fwd():
        with torch.no_grad():
            return ei_rnn_scan(*inputs, backend=backend)

    def fwd_bwd():
        out = ei_rnn_scan(*inputs, backend=backend)
        return torch.autograd.grad(out, inputs, cot)

    return fwd, fwd_bwd


@pytest.mark.parametrize("device", devices())
@pytest.mark.parametrize("N", SIZES)
@pytest.mark.parametrize("backend", ["fused", "reference"])
@pytest.mark.parametrize("mode", ["fwd", "fwd_bwd"])
def test_rnn_scan(benchmark, device, N, backend, mode):
    inputs, cot = make(N, device)
    fwd, fwd_bwd = step_fns(inputs, cot, backend)
    fn = fwd if mode == "fwd" else fwd_bwd
    benchmark.extra_info.update(device=device_name(device), shape=[B, T, N])

    def run():
        out = fn()
        sync(device)
        return out

    benchmark.pedantic(run, rounds=3 if QUICK else 7, warmup_rounds=1)


@pytest.mark.parametrize("device", devices())
@pytest.mark.parametrize("N", SIZES)
def test_rnn_scan_speedup(device, N):
    """Agreement first, then fused vs reference fwd+bwd in one run, ratio recorded and checked."""
    inputs, cot = make(N, device)
    f_fwd, f_fb = step_fns(inputs, cot, "fused")
    r_fwd, r_fb = step_fns(inputs, cot, "reference")
    for a, b in zip(f_fb(), r_fb()):
        assert ((a - b).abs().max() / b.abs().max()).item() < 1e-3
    res = {"device": device_name(device), "shape": [B, T, N], "dtype": "float32"}
    for name, fn in (
        ("fused_fwd", f_fwd),
        ("reference_fwd", r_fwd),
        ("fused_fwd_bwd", f_fb),
        ("reference_fwd_bwd", r_fb),
    ):
        med, best = time_call(fn, device, repeat=3 if QUICK else 7)
        res[name + "_ms"] = round(1e3 * med, 3)
        res[name + "_min_ms"] = round(1e3 * best, 3)
    if os.environ.get("EIRNN_BENCH_COMPILE") == "1":
        compiled = torch.compile(ei_rnn_scan_reference)
        for _ in range(2):  # compile (minutes on CPU), then warm
            torch.autograd.grad(compiled(*inputs), inputs, cot)
        med, best = time_call(lambda: torch.autograd.grad(compiled(*inputs), inputs, cot), device)
        res["compile_fwd_bwd_ms"] = round(1e3 * med, 3)
        res["ratio_fwd_bwd_vs_compile"] = round(med / (res["fused_fwd_bwd_ms"] / 1e3), 2)
    res["ratio_fwd"] = round(res["reference_fwd_ms"] / res["fused_fwd_ms"], 2)
    res["ratio_fwd_bwd"] = round(res["reference_fwd_bwd_ms"] / res["fused_fwd_bwd_ms"], 2)
    res["ratio_fwd_bwd_best"] = round(res["reference_fwd_bwd_min_ms"] / res["fused_fwd_bwd_min_ms"], 2)
    record("rnn_scan", res)
    if not QUICK:
        assert max(res["ratio_fwd_bwd"], res["ratio_fwd_bwd_best"]) >= MIN_RATIO[device], res
