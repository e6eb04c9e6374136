"""ei_rnn_scan / ei_rnn_rates with NaN and inf inputs: the fused kernels put NaN and inf exactly where
the reference does, in the outputs and in every gradient (README: "NaN/inf propagate exactly as in
the reference"), for float32 and float64.

The float64 CPU kernels once returned finite d_drive / d_x0 where the reference gives NaN:
softplus'(NaN) came out as 1 because the float64 vector helpers are built with -ffast-math, whose
-ffinite-math-only let GCC fold the NaN branch (csrc/common/vmath_cpu.cpp).
"""

import itertools

import pytest
import torch
from testutils import requires_compiled

from eirnn_fast.ops import ei_rnn_rates, ei_rnn_scan
from eirnn_fast.reference import ei_rnn_rates_reference, ei_rnn_scan_reference

pytestmark = requires_compiled

BAD = [float("nan"), float("inf"), -float("inf")]


def _placement_equal(fused, ref):
    return (
        torch.equal(fused.isnan(), ref.isnan())
        and torch.equal(fused.isposinf(), ref.isposinf())
        and (torch.equal(fused.isneginf(), ref.isneginf()))
    )


def _scan_inputs(dtype, B=3, T=5, N=11, seed=0):
    gen = torch.Generator().manual_seed(seed)
    drive = 0.5 * torch.randn(B, T, N, generator=gen, dtype=torch.float64)
    x0 = torch.randn(B, N, generator=gen, dtype=torch.float64)
    w = torch.randn(N, N, generator=gen, dtype=torch.float64) * (0.9 / N**0.5)
    alpha = 0.1 + 0.8 * torch.rand(N, generator=gen, dtype=torch.float64)
    return [t.to(dtype) for t in (drive, x0, w, alpha)]


def _run(fn, inputs, cot):
    leaves = [t.clone().requires_grad_() for t in inputs]
    out = fn(*leaves)
    return [out.detach(), *torch.autograd.grad(out, leaves, cot)]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("which, bad", list(itertools.product(range(4), BAD)))
def test_scan_nonfinite_placement_matches_reference(dtype, which, bad):
    inputs = _scan_inputs(dtype)
    # N = 11 is not a multiple of the vector width: the bad value sits in a vector lane (index 1)
    inputs[which].view(-1)[1] = bad
    cot = torch.randn(3, 5, 11, dtype=dtype, generator=torch.Generator().manual_seed(1))
    fused = _run(lambda *a: ei_rnn_scan(*a, backend="fused"), inputs, cot)
    ref = _run(ei_rnn_scan_reference, inputs, cot)
    for name, f, r in zip(("states", "d_drive", "d_x0", "d_w_rec", "d_alpha"), fused, ref):
        assert _placement_equal(f, r), (name, int(f.isnan().sum()), int(r.isnan().sum()))
        fin = torch.isfinite(r)
        assert torch.allclose(f[fin], r[fin], rtol=1e-4, atol=1e-5), name


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("which, bad", list(itertools.product(range(4), BAD)))
def test_rates_nonfinite_placement_matches_reference(dtype, which, bad):
    gen = torch.Generator().manual_seed(0)
    inputs = [
        torch.randn(2, 4, 9, generator=gen, dtype=torch.float64).to(dtype),
        torch.randn(2, 9, generator=gen, dtype=torch.float64).to(dtype),
        torch.tensor(1.3, dtype=dtype),
        torch.tensor(-0.2, dtype=dtype),
    ]
    t = inputs[which]
    t.view(-1)[min(1, t.numel() - 1)] = bad
    cot = torch.randn(2, 4, 9, dtype=dtype, generator=torch.Generator().manual_seed(1))
    fused = _run(lambda *a: ei_rnn_rates(*a, backend="fused"), inputs, cot)
    ref = _run(ei_rnn_rates_reference, inputs, cot)
    for name, f, r in zip(("rates", "d_states", "d_x0", "d_scale", "d_base"), fused, ref):
        assert _placement_equal(f, r), (name, f, r)
