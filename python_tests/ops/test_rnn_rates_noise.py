"""ei_rnn_rates and state_noise_: the fused passes around the scan against their references."""

import pytest
import torch
from testutils import requires_compiled

from eirnn_fast.ops import ei_rnn_rates, state_noise_
from eirnn_fast.reference import ei_rnn_rates_reference, state_noise_reference

pytestmark = requires_compiled


def rate_inputs(B, T, N, dtype, seed=0, x0_batched=True, scale=7.5, base=-0.3):
    gen = torch.Generator().manual_seed(seed)
    # states spread across the softplus regimes, including the linear branch above 20
    states = 4.0 * torch.randn(B, T, N, generator=gen, dtype=torch.float64)
    states.view(-1)[:: max(1, states.numel() // 5)] = 25.0
    x0 = torch.randn(*((B, N) if x0_batched else (N,)), generator=gen, dtype=torch.float64)
    s = torch.tensor(scale, dtype=torch.float64)
    b = torch.tensor(base, dtype=torch.float64)
    return [t.to(dtype).requires_grad_() for t in (states, x0, s, b)]


def rel_err(a, b):
    return ((a.double() - b.double()).abs().max() / b.double().abs().max().clamp_min(1e-30)).item()


@pytest.mark.parametrize("shape", [(5, 17, 11), (3, 219, 65), (1, 1, 1), (2, 1, 7), (1, 9, 1)])
@pytest.mark.parametrize("x0_batched", [True, False])
def test_rates_float64_match_reference(shape, x0_batched):
    B, T, N = shape
    inputs = rate_inputs(B, T, N, torch.float64, seed=B + T + N, x0_batched=x0_batched)
    cot = torch.randn(B, T, N, dtype=torch.float64)
    out_f = ei_rnn_rates(*inputs, backend="fused")
    out_r = ei_rnn_rates_reference(*inputs)
    assert rel_err(out_f, out_r) < 1e-12
    g_f = torch.autograd.grad(out_f, inputs, cot)
    g_r = torch.autograd.grad(out_r, inputs, cot)
    for name, a, b in zip(("states", "x0", "rate_scale", "rate_baseline"), g_f, g_r):
        assert a.shape == b.shape, name
        assert rel_err(a, b) < 1e-10, name


def test_rates_float32_match_float64_reference():
    inputs64 = rate_inputs(16, 40, 54, torch.float64, seed=3)
    inputs32 = [t.detach().float().requires_grad_() for t in inputs64]
    cot = torch.randn(16, 40, 54, dtype=torch.float64)
    out_f = ei_rnn_rates(*inputs32, backend="fused")
    out_r = ei_rnn_rates_reference(*inputs64)
    assert out_f.dtype == torch.float32 and rel_err(out_f, out_r) < 2e-6
    g_f = torch.autograd.grad(out_f, inputs32, cot.float())
    g_r = torch.autograd.grad(out_r, inputs64, cot)
    for name, a, b in zip(("states", "x0", "rate_scale", "rate_baseline"), g_f, g_r):
        assert rel_err(a, b) < 2e-4, name


def test_rates_gradcheck_and_clamp_edge():
    inputs = [
        t.detach()[:, :6, :5].contiguous().requires_grad_() if t.dim() == 3 else t
        for t in rate_inputs(2, 6, 5, torch.float64, seed=1)
    ]
    inputs[1] = inputs[1].detach()[:, :5].contiguous().requires_grad_()
    assert torch.autograd.gradcheck(lambda *a: ei_rnn_rates(*a, backend="fused"), inputs)
    # negative baseline: part of the grid is clamped to 0 and gets no gradient
    states, x0, s, b = rate_inputs(2, 6, 5, torch.float64, seed=1, base=-5.0)
    out = ei_rnn_rates(states, x0, s, b, backend="fused")
    assert (out == 0).any() and (out > 0).any()


def test_rates_every_element_written_and_nan_propagates():
    states, x0, s, b = [t.detach() for t in rate_inputs(3, 8, 6, torch.float32, seed=4)]
    states[1, 3, 2] = float("nan")
    out = ei_rnn_rates(states, x0, s, b, backend="fused")
    ref = ei_rnn_rates_reference(states, x0, s, b)
    assert torch.equal(out.isnan(), ref.isnan()) and out[1, 4, 2].isnan()
    assert torch.allclose(out.nan_to_num(-1.0), ref.nan_to_num(-1.0), rtol=1e-6, atol=1e-6)


def test_rates_deterministic_across_thread_counts():
    inputs = rate_inputs(40, 50, 33, torch.float32, seed=9)
    cot = torch.randn(40, 50, 33)
    results = []
    old = torch.get_num_threads()
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            out = ei_rnn_rates(*inputs, backend="fused")
            results.append([out] + list(torch.autograd.grad(out, inputs, cot)))
    finally:
        torch.set_num_threads(old)
    for a, b in zip(*results):
        assert torch.equal(a, b)


def test_rates_bad_input():
    states, x0, s, b = rate_inputs(2, 3, 4, torch.float32)
    with pytest.raises(ValueError, match="states must be"):
        ei_rnn_rates(states[0], x0, s, b)
    with pytest.raises(ValueError, match="x0 must be"):
        ei_rnn_rates(states, x0[:, :3], s, b)
    with pytest.raises(ValueError, match="rate_scale must hold one value"):
        ei_rnn_rates(states, x0, torch.ones(2), b)
    with pytest.raises(TypeError, match="x0 is torch.float64"):
        ei_rnn_rates(states, x0.double(), s, b)
    with pytest.raises(TypeError, match="rate_baseline must be a torch.Tensor"):
        ei_rnn_rates(states, x0, s, 0.5)


def draws(n, seed, dtype=torch.float32, threads=None):
    x = torch.zeros(n, dtype=dtype)
    old = torch.get_num_threads()
    try:
        if threads:
            torch.set_num_threads(threads)
        torch.ops.eirnn_fast.noise_add_(x, torch.tensor(1.0, dtype=dtype), seed)
    finally:
        torch.set_num_threads(old)
    return x


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_noise_draws_are_standard_normal(dtype):
    from scipy import stats

    x = draws(300_001, seed=123, dtype=dtype).double()
    assert abs(x.mean().item()) < 0.01 and abs(x.std().item() - 1.0) < 0.01
    assert abs((x**4).mean().item() - 3.0) < 0.05  # Gaussian kurtosis, not a uniform's 1.8
    assert stats.kstest(x.numpy(), "norm").pvalue > 1e-3
    y = draws(300_001, seed=124, dtype=dtype).double()
    assert abs(torch.corrcoef(torch.stack([x, y]))[0, 1].item()) < 0.01  # seeds give independent streams


def test_noise_is_a_function_of_seed_and_index():
    full = draws(70_000, seed=7)
    assert torch.equal(full, draws(70_000, seed=7, threads=1))  # any thread count
    assert not torch.equal(full, draws(70_000, seed=8))
    # a slice of a longer stream is the same as the start of it (element e depends only on e)
    assert torch.equal(draws(5_000, seed=7), full[:5_000])
    assert not (full == 0).any()  # every element written


def test_state_noise_adds_scaled_draws_and_gradient():
    drive = torch.randn(4, 30, 9, dtype=torch.float64)
    std = torch.tensor(0.3, dtype=torch.float64, requires_grad=True)
    base = drive.clone().requires_grad_()
    work = base * 1.0  # a non-leaf, as the model's F.linear output
    out = state_noise_(work, std, seed=11, backend="fused")
    xi = draws(drive.numel(), seed=11, dtype=torch.float64).view_as(drive)
    assert torch.allclose(out, drive + 0.3 * xi, rtol=0, atol=1e-15)
    cot = torch.randn_like(drive)
    g_base, g_std = torch.autograd.grad(out, (base, std), cot)
    assert torch.equal(g_base, cot)
    assert abs(g_std.item() - (cot * xi).sum().item()) < 1e-10


def test_state_noise_seeded_by_torch_generator_and_reference_fallback():
    d = torch.zeros(3, 5, 4)
    torch.manual_seed(0)
    a = state_noise_(d.clone(), torch.tensor(1.0))
    torch.manual_seed(0)
    b = state_noise_(d.clone(), torch.tensor(1.0))
    assert torch.equal(a, b) and a.std() > 0.5
    x = d.clone()
    r = state_noise_(x, torch.tensor(1.0), seed=5, backend="reference")
    assert r is x and r.std() > 0.5  # in place on every path
    assert torch.equal(r, state_noise_reference(d, torch.tensor(1.0), torch.Generator().manual_seed(5)))
    assert torch.equal(r, state_noise_(d.clone(), torch.tensor(1.0), seed=5, backend="reference"))
    with pytest.raises(ValueError, match="std must hold one value"):
        state_noise_(d, torch.ones(2))
    with pytest.raises(TypeError, match="share a float32/float64 dtype"):
        state_noise_(d, torch.tensor(1.0, dtype=torch.float64))


def _softplus_grid() -> torch.Tensor:
    """States over every regime of the float32 softplus kernels, each value's neighbours differing
    in regime: the unit-interval boundaries of the piecewise tables (0..32, both signs, one float32
    step to each side), the AVX2 table's edge at |x| = 8, the linear branch above 20, and random
    values; shuffled so vectors of 8 / 16 lanes mix table and exp lanes."""
    gen = torch.Generator().manual_seed(11)
    edges = torch.arange(0, 33, dtype=torch.float32)
    steps = torch.cat([edges, edges.nextafter(torch.full_like(edges, -1)), edges.nextafter(torch.full_like(edges, 99))])
    rand = torch.cat([16 * torch.rand(4000, generator=gen) - 8, 80 * torch.rand(1000, generator=gen) - 40])
    x = torch.cat([steps, -steps, rand]).float()
    return x[torch.randperm(x.numel(), generator=gen)]


def test_rates_float32_softplus_elementwise_relative_error():
    """rates = softplus(x_{t-1}) (scale 1, base 0) and its gradient sigmoid(x), each element within
    1e-6 of float64 torch *relative to itself* (a max-normalised error would hide the small values
    at negative x), across the kernel's table and exp paths and their boundaries."""
    x = _softplus_grid()
    n = x.numel() - x.numel() % 7
    states = x[:n].reshape(1, -1, 7).contiguous().requires_grad_()  # 7 units: vectors span rows
    x0 = torch.zeros(7)
    one, zero = torch.tensor(1.0), torch.tensor(0.0)
    out = ei_rnn_rates(states, x0, one, zero, backend="fused")
    (g,) = torch.autograd.grad(out, states, torch.ones_like(out))
    x64 = states.detach().double()
    ref = torch.nn.functional.softplus(x64)  # rates_t reads x_{t-1}: compare rows 1.. with states 0..
    got = out.detach().double()[0, 1:]
    want = ref[0, :-1]
    keep = want > 1e-12
    assert (((got - want).abs() / want.clamp_min(1e-30))[keep]).max() < 1e-6
    dref = torch.sigmoid(x64)[0, :-1]
    dgot = g.double()[0, :-1]  # the last state feeds no rate
    keep = dref > 1e-12
    assert (((dgot - dref).abs() / dref)[keep]).max() < 1e-6
