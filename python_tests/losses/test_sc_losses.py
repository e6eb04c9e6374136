"""L_neuron, regularisers, gradient balancing on toy losses with known gradients, E/I pairing."""

import math

import numpy as np
import pytest
import torch

from eirnn_fast.losses import GradientBalancer, l_activity, l_neuron, l_reg, smooth_time
from eirnn_fast.metrics import psth_correlation
from eirnn_fast.models import EIRNN, recorded_unit_index


def _reference_l_neuron(m, t):
    """The predecessor's formula written out with numpy (no mask, no smoothing)."""
    pm, pt = m.mean(0), t.mean(0)
    r = np.array([np.corrcoef(pm[:, i], pt[:, i])[0, 1] for i in range(pm.shape[1])])
    l_corr = (1 - np.clip(r, -1, 1)).mean()
    l_scale = (pm.mean() - pt.mean()) ** 2 / pt.var(ddof=1)
    mv, tv = pm.var(0, ddof=1).mean(), pt.var(0, ddof=1).mean()
    return l_corr + 0.1 * l_scale + 0.05 * (mv - tv) ** 2 / (tv**2 + 1e-6)


def test_l_neuron_matches_formula_and_metric():
    g = torch.Generator().manual_seed(0)
    m = torch.rand(6, 20, 4, generator=g, dtype=torch.float64) * 10
    t = torch.rand(6, 20, 4, generator=g, dtype=torch.float64) * 12
    loss, parts = l_neuron(m, t, return_parts=True)
    assert float(loss) == pytest.approx(_reference_l_neuron(m.numpy(), t.numpy()), rel=1e-10)
    assert float(parts["psth_corr"]) == pytest.approx(psth_correlation(m, t), rel=1e-10)
    assert float(l_neuron(t, t)) == pytest.approx(0.0, abs=1e-12)


def test_l_neuron_mask_unit_index_and_gradcheck():
    g = torch.Generator().manual_seed(1)
    m = torch.rand(3, 5, 6, generator=g, dtype=torch.float64, requires_grad=True)
    t = torch.rand(3, 5, 2, generator=g, dtype=torch.float64)
    mask = torch.ones(3, 5, dtype=torch.float64)
    mask[2, 3:] = 0
    idx = [5, 1]
    torch.autograd.gradcheck(lambda x: l_neuron(x, t, mask=mask, unit_index=idx, smooth_ms=50.0), (m,))
    with pytest.raises(ValueError, match="unit_index"):
        l_neuron(m, t)


def test_l_neuron_flat_model_is_finite():
    t = torch.rand(4, 10, 3)
    flat = torch.full((4, 10, 3), 2.0, requires_grad=True)
    loss = l_neuron(flat, t)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(flat.grad).all()


def test_smooth_time_matches_metric_smoothing():
    from eirnn_fast.metrics import smooth_psth

    p = torch.rand(17, 3, dtype=torch.float64)
    np.testing.assert_allclose(smooth_time(p, 100.0, 25.0).numpy(), smooth_psth(p.numpy(), 100.0, 25.0), rtol=1e-12)


def test_regularisers():
    torch.manual_seed(0)
    model = EIRNN(3, 2, 4)
    with torch.no_grad():
        assert float(l_reg(model)) == pytest.approx(float(model.W_rec.pow(2).sum() + model.W_in.pow(2).sum()))
    rates = torch.full((2, 3, 5), 12.0)
    assert float(l_activity(rates, 10.0)) == pytest.approx(0.04)
    mask = torch.tensor([[1.0, 1, 1], [0, 0, 0]])
    rates[1] = 100.0
    assert float(l_activity(rates, 12.0, mask)) == pytest.approx(0.0)


# ----------------------------------------------------------------------------- balancing
def _toy(n=4):
    p = torch.nn.Parameter(torch.arange(1.0, n + 1, dtype=torch.float64))
    return p, {"neuron": 3.0 * p.sum(), "trial": (p**2).sum()}


def test_param_norm_normalises_each_gradient():
    p, losses = _toy()
    bal = GradientBalancer(mode="param_norm", weights={"neuron": 1.0, "trial": 0.5})
    extra = 0.25 * (p**2).sum()
    stats = bal.backward(losses, extra=extra, params=[p])
    x = p.detach()
    expect = torch.ones(4, dtype=torch.float64) / 2.0 + 0.5 * x / x.norm() + 0.5 * x
    torch.testing.assert_close(p.grad, expect)
    assert stats["grad_norm_neuron"] == pytest.approx(6.0)  # ||3 * ones(4)||


def test_param_norm_zero_weight_costs_nothing():
    p, losses = _toy()
    bal = GradientBalancer(mode="param_norm", weights={"trial": 0.0})
    stats = bal.backward(losses, params=[p])
    torch.testing.assert_close(p.grad, torch.full((4,), 0.5, dtype=torch.float64))
    assert "grad_norm_trial" not in stats


def test_loss_ema_divides_by_running_loss_value():
    bal = GradientBalancer(mode="loss_ema", weights={"neuron": 1.0, "trial": 0.5}, loss_ema_decay=0.9)
    p, losses = _toy()
    bal.backward(losses, params=[p])
    x = p.detach()
    l_n, l_t = 3 * x.sum(), (x**2).sum()
    torch.testing.assert_close(p.grad, 3.0 / l_n + 0.5 * 2 * x / l_t)  # first step: EMA = value
    p.grad = None
    losses = {"neuron": 3.0 * p.sum() * 2.0}
    bal.backward(losses, params=[p])
    ema = 0.9 * float(l_n) + 0.1 * float(2 * l_n)
    torch.testing.assert_close(p.grad, torch.full((4,), 6.0 / ema, dtype=torch.float64))


def test_activity_ema_normalises_where_it_enters_the_rates():
    w = torch.nn.Parameter(torch.tensor(2.0, dtype=torch.float64))
    bal = GradientBalancer(mode="activity_ema", weights={"neuron": 1.0, "trial": 0.5}, activity_ema_decay=0.9)
    rates = w * torch.ones(4, dtype=torch.float64)  # d rates / d w = 1 per element
    a_n, a_t = bal.tap("neuron", rates), bal.tap("trial", rates)
    losses = {"neuron": 5.0 * a_n.sum(), "trial": (a_t**2).sum()}
    bal.backward(losses)
    # step 1: bias-corrected EMA of ||g||^2 = ||g||^2, so each gradient becomes w_k * g / ||g||
    g_n = torch.full((4,), 5.0, dtype=torch.float64)
    g_t = 2 * rates.detach()
    expect = (g_n / g_n.norm()).sum() + 0.5 * (g_t / g_t.norm()).sum()
    torch.testing.assert_close(w.grad, expect)
    # step 2: the EMA now mixes both steps' norms (bias-corrected)
    w.grad = None
    rates = w * torch.ones(4, dtype=torch.float64)
    bal.backward({"neuron": 10.0 * bal.tap("neuron", rates).sum()})
    sq1, sq2 = 4 * 25.0, 4 * 100.0
    hat = (0.9 * 0.1 * sq1 + 0.1 * sq2) / (1 - 0.9**2)
    torch.testing.assert_close(w.grad, torch.tensor(4 * 10.0 / math.sqrt(hat), dtype=torch.float64))


def test_balancer_state_round_trips_through_state_dict():
    bal = GradientBalancer(mode="loss_ema")
    p, losses = _toy()
    bal.backward(losses, params=[p])
    other = GradientBalancer(mode="loss_ema")
    other.load_state_dict(bal.state_dict())
    assert float(other.loss_ema_neuron) == float(bal.loss_ema_neuron) != 0.0
    with pytest.raises(ValueError):
        GradientBalancer(mode="bogus")


# ----------------------------------------------------------------------------- pairing, L_trial
def test_interleaved_types_pair_with_units_of_their_own_type():
    types = [1, 2, 2, 1, 1, 1, 1, 1, 2, 1, 2, 2, 2, 1]  # the 08_13 order
    idx = recorded_unit_index(types, n_exc=24, n_inh=6)
    is_i = np.array(types) == 2
    assert (idx[torch.from_numpy(is_i)] >= 24).all() and (idx[torch.from_numpy(~is_i)] < 24).all()
    assert len(set(idx.tolist())) == len(types)
    # a signal placed only on the right units is seen by the loss through the index
    target = torch.rand(3, 8, 14, dtype=torch.float64)
    rates = torch.zeros(3, 8, 30, dtype=torch.float64)
    rates[:, :, idx] = target
    assert float(l_neuron(rates, target, unit_index=idx)) == pytest.approx(0.0, abs=1e-12)


def test_l_neuron_unit_index_selects_after_the_trial_mean():
    """unit_index: the PSTH's columns are selected (no [K, T, N] gather); same loss and gradient as
    selecting the rates first, in float64; a unit outside the rates is a ValueError naming it."""
    g = torch.Generator().manual_seed(3)
    rates = torch.rand(7, 11, 9, generator=g, dtype=torch.float64, requires_grad=True)
    t = torch.rand(7, 11, 4, generator=g, dtype=torch.float64)
    mask = (torch.rand(7, 11, generator=g) > 0.2).double()
    idx = torch.tensor([8, 0, 3, 5])
    for mode in ("valid", "multiply"):
        a = l_neuron(rates, t, mask=mask, unit_index=idx, mask_mode=mode)
        b = l_neuron(rates[..., idx], t, mask=mask, mask_mode=mode)
        ga = torch.autograd.grad(a, rates)[0]
        gb = torch.autograd.grad(b, rates)[0]
        assert float(a) == pytest.approx(float(b), rel=1e-12)
        assert torch.allclose(ga, gb, rtol=1e-10, atol=1e-14)
    for bad in ([9, 0, 1, 2], [-1, 0, 1, 2]):
        with pytest.raises(ValueError, match="unit_index"):
            l_neuron(rates, t, unit_index=bad)
