"""ei_rnn_scan: fused kernels against the float64 reference, gradients, edge shapes, bad input."""

import pytest
import torch
from testutils import devices, requires_compiled, requires_cuda

from eirnn_fast.ops import ei_rnn_scan
from eirnn_fast.reference import ei_rnn_scan_reference

pytestmark = requires_compiled


def make_inputs(B, T, N, dtype, device="cpu", seed=0, x0_batched=True, alpha_shape="n"):
    gen = torch.Generator().manual_seed(seed)
    drive = 0.5 * torch.randn(B, T, N, generator=gen, dtype=torch.float64)
    x0 = (
        torch.randn(B, N, generator=gen, dtype=torch.float64)
        if x0_batched
        else torch.randn(N, generator=gen, dtype=torch.float64)
    )
    # spectral radius ~0.9 with mixed signs, as after Dale's law
    w = torch.randn(N, N, generator=gen, dtype=torch.float64) * (0.9 / max(N, 1) ** 0.5)
    alpha = {
        "n": 0.1 + 0.8 * torch.rand(N, generator=gen, dtype=torch.float64),
        "scalar": torch.tensor(0.37, dtype=torch.float64),
        "one": torch.tensor([0.42], dtype=torch.float64),
    }[alpha_shape]
    return [t.to(device=device, dtype=dtype).requires_grad_() for t in (drive, x0, w, alpha)]


def grads(fn, inputs, cotangent):
    out = fn(*inputs)
    return out, torch.autograd.grad(out, inputs, cotangent)


def rel_err(a, b):
    return ((a.double() - b.double()).abs().max() / b.double().abs().max().clamp_min(1e-30)).item()


@pytest.mark.parametrize("device", devices())
@pytest.mark.parametrize("shape", [(5, 17, 11), (19, 8, 54), (3, 6, 65), (1, 1, 1), (2, 3, 130)])
def test_float64_matches_reference(device, shape):
    B, T, N = shape
    inputs = make_inputs(B, T, N, torch.float64, device, seed=B * 1000 + N)
    cot = torch.randn(B, T, N, dtype=torch.float64, device=device)
    out_f, g_f = grads(lambda *a: ei_rnn_scan(*a, backend="fused"), inputs, cot)
    out_r, g_r = grads(ei_rnn_scan_reference, inputs, cot)
    assert rel_err(out_f, out_r) < 1e-9
    for name, a, b in zip(("drive", "x0", "w_rec", "alpha"), g_f, g_r):
        assert rel_err(a, b) < 1e-9, name


@pytest.mark.parametrize("device", devices())
@pytest.mark.parametrize("shape", [(33, 40, 54), (4, 25, 65), (2, 9, 7)])
def test_float32_matches_float64_reference(device, shape):
    B, T, N = shape
    inputs64 = make_inputs(B, T, N, torch.float64, device, seed=N)
    inputs32 = [t.detach().float().requires_grad_() for t in inputs64]
    cot = torch.randn(B, T, N, dtype=torch.float64, device=device)
    out_f, g_f = grads(lambda *a: ei_rnn_scan(*a, backend="fused"), inputs32, cot.float())
    out_r, g_r = grads(ei_rnn_scan_reference, inputs64, cot)
    assert out_f.dtype == torch.float32
    assert rel_err(out_f, out_r) < 2e-4
    for name, a, b in zip(("drive", "x0", "w_rec", "alpha"), g_f, g_r):
        assert rel_err(a, b) < 2e-4, name


@pytest.mark.parametrize("N", [8, 15, 24, 32, 40, 47, 50, 54, 57, 64, 65, 72, 80, 88, 96, 100])
def test_every_register_tile_width_matches_float64_reference(N):
    # one case per float32 row width of 1..13 vectors (AVX2) / 1..7 (AVX-512): whole-row tiles,
    # column-blocked tiles (AVX2: 7 and 8 vectors, N = 50..64), the generic fallback beyond; B = 14
    # leaves remainders after the 12-row groups and the 3- and 4-row tiles, in the matrix-vector
    # products and in the outer products of dL/dW
    B, T = 14, 6
    inputs64 = make_inputs(B, T, N, torch.float64, seed=int(torch.randint(0, 2**31 - 1, ()).item()))
    inputs32 = [t.detach().float().requires_grad_() for t in inputs64]
    cot = torch.randn(B, T, N, dtype=torch.float64)
    out_f, g_f = grads(lambda *a: ei_rnn_scan(*a, backend="fused"), inputs32, cot.float())
    out_r, g_r = grads(ei_rnn_scan_reference, inputs64, cot)
    assert rel_err(out_f, out_r) < 2e-5
    for name, a, b in zip(("drive", "x0", "w_rec", "alpha"), g_f, g_r):
        assert rel_err(a, b) < 5e-5, name


def test_gradcheck_float64():
    inputs = make_inputs(3, 5, 4, torch.float64, seed=7)
    assert torch.autograd.gradcheck(lambda *a: ei_rnn_scan(*a, backend="fused"), inputs)


@pytest.mark.parametrize("alpha_shape", ["scalar", "one"])
def test_gradcheck_broadcast_x0_and_scalar_alpha(alpha_shape):
    inputs = make_inputs(2, 4, 3, torch.float64, seed=3, x0_batched=False, alpha_shape=alpha_shape)
    assert torch.autograd.gradcheck(lambda *a: ei_rnn_scan(*a, backend="fused"), inputs)
    out_f = ei_rnn_scan(*inputs, backend="fused")
    out_r = ei_rnn_scan_reference(*inputs)
    assert rel_err(out_f, out_r) < 1e-12


def test_float_alpha_argument():
    d, x0, w, _ = make_inputs(2, 3, 4, torch.float64)
    out_f = ei_rnn_scan(d, x0, w, 0.5, backend="fused")
    out_r = ei_rnn_scan_reference(d, x0, w, torch.tensor(0.5, dtype=torch.float64))
    assert rel_err(out_f, out_r) < 1e-12


def test_non_contiguous_inputs():
    B, T, N = 4, 6, 9
    d, x0, w, a = make_inputs(B, T, N, torch.float64)
    d_nc = d.detach().transpose(0, 1).contiguous().transpose(0, 1).requires_grad_()
    w_nc = w.detach().t().contiguous().t().requires_grad_()
    x0_nc = x0.detach().repeat(1, 2)[:, ::2].requires_grad_()
    assert not d_nc.is_contiguous() and not w_nc.is_contiguous() and not x0_nc.is_contiguous()
    cot = torch.randn(B, T, N, dtype=torch.float64).transpose(0, 1).contiguous().transpose(0, 1)
    out_f, g_f = grads(lambda *z: ei_rnn_scan(*z, backend="fused"), [d_nc, x0_nc, w_nc, a], cot)
    out_r, g_r = grads(ei_rnn_scan_reference, [d_nc, x0_nc, w_nc, a], cot)
    assert rel_err(out_f, out_r) < 1e-12
    for a_, b_ in zip(g_f, g_r):
        assert rel_err(a_, b_) < 1e-12


def test_every_output_written():
    """Poison test: NaN-filled memory from a previous allocation must never leak into the result."""
    B, T, N = 37, 11, 23
    for _ in range(3):
        junk = torch.full((B, T, N), float("nan"))
        del junk
        d, x0, w, a = [t.detach() for t in make_inputs(B, T, N, torch.float32)]
        out = ei_rnn_scan(d, x0, w, a, backend="fused")
        assert torch.isfinite(out).all()


def test_partial_needs_input_grad():
    d, x0, w, a = make_inputs(6, 5, 8, torch.float64)
    w = w.detach()
    a = a.detach()
    out = ei_rnn_scan(d, x0, w, a, backend="fused")
    gd, gx = torch.autograd.grad(out.sum(), (d, x0))
    out_r = ei_rnn_scan_reference(d, x0, w, a)
    rd, rx = torch.autograd.grad(out_r.sum(), (d, x0))
    assert rel_err(gd, rd) < 1e-12 and rel_err(gx, rx) < 1e-12


def test_deterministic_across_thread_counts():
    inputs = make_inputs(70, 12, 54, torch.float32, seed=11)
    cot = torch.randn(70, 12, 54)
    old = torch.get_num_threads()
    try:
        results = []
        for threads in (1, 2):
            torch.set_num_threads(threads)
            out, g = grads(lambda *a: ei_rnn_scan(*a, backend="fused"), inputs, cot)
            results.append((out, g))
    finally:
        torch.set_num_threads(old)
    (o1, g1), (o2, g2) = results
    assert torch.equal(o1, o2)
    assert all(torch.equal(a, b) for a, b in zip(g1, g2))


def test_large_positive_states_use_linear_softplus():
    """Above softplus's threshold (20) the map is linear, as in torch: the kernels must agree there."""
    d, x0, w, a = make_inputs(3, 6, 5, torch.float64)
    d = (d.detach() + 30.0).requires_grad_()
    cot = torch.randn(3, 6, 5, dtype=torch.float64)
    out_f, g_f = grads(lambda *z: ei_rnn_scan(*z, backend="fused"), [d, x0, w, a], cot)
    out_r, g_r = grads(ei_rnn_scan_reference, [d, x0, w, a], cot)
    assert rel_err(out_f, out_r) < 1e-12
    for a_, b_ in zip(g_f, g_r):
        assert rel_err(a_, b_) < 1e-9


def test_nan_propagates_like_reference():
    d, x0, w, a = [t.detach() for t in make_inputs(2, 5, 4, torch.float64)]
    d[1, 2, 3] = float("nan")
    out_f = ei_rnn_scan(d, x0, w, a, backend="fused")
    out_r = ei_rnn_scan_reference(d, x0, w, a)
    assert torch.equal(torch.isnan(out_f), torch.isnan(out_r))
    assert torch.isfinite(out_f[0]).all() and torch.isfinite(out_f[1, :2]).all()


def test_backends_and_reference_fallback():
    d, x0, w, a = [t.detach() for t in make_inputs(2, 3, 4, torch.float64)]
    auto = ei_rnn_scan(d, x0, w, a)
    ref = ei_rnn_scan(d, x0, w, a, backend="reference")
    assert rel_err(auto, ref) < 1e-12
    with pytest.raises(ValueError, match="backend"):
        ei_rnn_scan(d, x0, w, a, backend="cuda")


@pytest.mark.parametrize(
    "mutate, exc, match",
    [
        (lambda d, x, w, a: (d[0], x, w, a), ValueError, r"drive must be \[B, T, N\]"),
        (lambda d, x, w, a: (d[:, :0], x, w, a), ValueError, "B, T, N >= 1"),
        (lambda d, x, w, a: (d[:0], x[:0], w, a), ValueError, "B, T, N >= 1"),
        (lambda d, x, w, a: (d, x[:, :3], w, a), ValueError, "x0 must be"),
        (lambda d, x, w, a: (d, x, w[:3], a), ValueError, "w_rec must be"),
        (lambda d, x, w, a: (d, x, w, a[:2]), ValueError, "alpha must be"),
        (lambda d, x, w, a: (d, x.float(), w, a), TypeError, "x0 has dtype"),
        (lambda d, x, w, a: (d.half(), x.half(), w.half(), a.half()), TypeError, "float32 or float64"),
        (lambda d, x, w, a: (d.numpy(), x, w, a), TypeError, "drive must be a torch.Tensor"),
        (lambda d, x, w, a: (d, x, w, "0.5"), TypeError, "alpha must be"),
    ],
)
def test_bad_input_raises_clear_errors(mutate, exc, match):
    d, x0, w, a = [t.detach() for t in make_inputs(3, 4, 5, torch.float64)]
    with pytest.raises(exc, match=match):
        ei_rnn_scan(*mutate(d, x0, w, a))


def test_direct_C_call_checks_shapes():
    """Even bypassing Python validation, the registered op raises instead of crashing."""
    C = torch.ops.eirnn_fast
    d = torch.randn(2, 3, 4)
    with pytest.raises(RuntimeError, match="x0 must have shape"):
        C.ei_rnn_scan_fwd(d, torch.randn(2, 5), torch.randn(4, 4), torch.rand(4))
    with pytest.raises(RuntimeError, match="w has dtype"):
        C.ei_rnn_scan_fwd(d, torch.randn(2, 4), torch.randn(4, 4, dtype=torch.float64), torch.rand(4))


def test_double_backward_raises():
    d, x0, w, a = make_inputs(2, 3, 4, torch.float64)
    out = ei_rnn_scan(d, x0, w, a, backend="fused")
    with pytest.raises(RuntimeError, match="double backward is not supported by the fused op ei_rnn_scan"):
        torch.autograd.grad(out.sum(), (w,), create_graph=True)


@requires_cuda
def test_cuda_large_n_falls_back_with_warning():
    d, x0, w, a = [t.detach() for t in make_inputs(2, 3, 300, torch.float32, "cuda")]
    with pytest.warns(RuntimeWarning, match="beyond the CUDA kernel"):
        out = ei_rnn_scan(d, x0, w, a)
    assert rel_err(out, ei_rnn_scan_reference(d, x0, w, a)) < 1e-6


@requires_cuda
@pytest.mark.parametrize("shape", [(835, 219, 54), (64, 50, 256), (3, 7, 200)])
def test_cuda_float32_flash_attention_rule(shape):
    """|fused32 - ref64| <= 2 |ref32 - ref64| + floor (CUDA tolerance rule of STYLE.md)."""
    B, T, N = shape
    in64 = make_inputs(B, T, N, torch.float64, "cuda", seed=5)
    in32 = [t.detach().float().requires_grad_() for t in in64]
    cot = torch.randn(B, T, N, dtype=torch.float64, device="cuda")
    out_f, g_f = grads(lambda *a: ei_rnn_scan(*a, backend="fused"), in32, cot.float())
    out_r32, g_r32 = grads(ei_rnn_scan_reference, in32, cot.float())
    out_r64, g_r64 = grads(ei_rnn_scan_reference, in64, cot)
    for f, r32, r64 in zip((out_f, *g_f), (out_r32, *g_r32), (out_r64, *g_r64)):
        err_f = (f.double() - r64).abs().max().item()
        err_r = (r32.double() - r64).abs().max().item()
        assert err_f <= 2 * err_r + 1e-5 * r64.abs().max().item()
