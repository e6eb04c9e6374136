"""The predecessor's loss forms (4factors-rnn-analysis 6fa65af src/losses.py) against hand
computations of its formulas in float64 numpy, next to ours, which must differ where they should."""

import numpy as np
import pytest
import torch

from eirnn_fast.losses import (
    GradientBalancer,
    l_activity_predecessor,
    l_activity_relative,
    l_neuron,
    l_reg_mean,
    l_reg_sum,
)
from eirnn_fast.models import EIRNN


def _rng():
    return np.random.default_rng(np.random.SeedSequence().entropy)  # fresh inputs every run


def test_l_reg_mean_is_the_mean_of_squares_and_sum_is_much_stronger():
    torch.manual_seed(int(_rng().integers(1 << 31)))
    model = EIRNN(8, 2, 14, low_rank=None)
    w_rec = model.W_rec.detach().double().numpy()  # effective: Dale signs, zero diagonal
    w_in = model.W_in.detach().double().numpy()
    hand = (w_rec**2).mean() + (w_in**2).mean()  # compute_L_reg's L_l2
    with torch.no_grad():
        mean, total = float(l_reg_mean(model)), float(l_reg_sum(model))
    assert mean == pytest.approx(hand, rel=1e-6)
    assert total == pytest.approx((w_rec**2).sum() + (w_in**2).sum(), rel=1e-6)
    assert total > 100 * mean  # 100 + 140 entries per matrix
    # the gradient reaches the raw parameters through the effective W_rec
    l_reg_mean(model).backward()
    assert model.W_rec_raw.grad is not None and float(model.W_rec_raw.grad.abs().sum()) > 0


def test_l_activity_predecessor_formula_with_an_active_hinge():
    rng = _rng()
    rates = rng.gamma(2.0, 6.0, size=(7, 11, 5))
    rates[:, 3, 1] += 150.0  # neuron 1 and 4 exceed target_max = 100 sp/s
    rates[2, :, 4] += 120.0
    lam = float(rng.uniform(0.001, 0.1))
    hand = lam * (rates.mean() - 10.0) ** 2 + 0.001 * (np.maximum(rates.max(axis=(0, 1)) - 100.0, 0.0) ** 2).mean()
    got = l_activity_predecessor(torch.from_numpy(rates), lambda_mean=lam)
    assert float(got) == pytest.approx(hand, rel=1e-6)
    assert float(got) > lam * (rates.mean() - 10.0) ** 2 * 1.01  # the hinge contributes
    # ours: relative to the given target, over every unit: a different number for the same rates
    ours = float(l_activity_relative(torch.from_numpy(rates), 10.0))
    assert ours == pytest.approx((rates.mean() / 10.0 - 1.0) ** 2, rel=1e-9)
    assert float(got) != pytest.approx(lam * ours, rel=1e-3)


def _predecessor_l_neuron(m, t, mask):
    """compute_L_neuron (6fa65af l. 125-210) in numpy: multiply by the mask, mean over ALL trials."""
    m, t = m * mask[..., None], t * mask[..., None]
    pm, pt = m.mean(0), t.mean(0)
    cm, ct = pm - pm.mean(0), pt - pt.mean(0)
    r = (cm * ct).sum(0) / (np.maximum(np.sqrt((cm**2).sum(0)), 1e-6) * np.maximum(np.sqrt((ct**2).sum(0)), 1e-6))
    l_corr = (1 - np.clip(r, -1, 1)).mean()
    l_scale = (pm.mean() - pt.mean()) ** 2 / max(pt.var(ddof=1), 1e-6)
    mv, tv = pm.var(0, ddof=1).mean(), pt.var(0, ddof=1).mean()
    return l_corr + 0.1 * l_scale + 0.05 * (mv - tv) ** 2 / (tv**2 + 1e-6)


def test_l_neuron_multiply_mask_is_the_predecessor_formula():
    rng = _rng()
    m = rng.gamma(2.0, 5.0, size=(9, 16, 4))
    t = rng.gamma(2.0, 6.0, size=(9, 16, 4))
    mask = np.ones((9, 16))
    mask[rng.choice(9, 4, replace=False), 10:] = 0.0  # ragged trials
    got = l_neuron(torch.from_numpy(m), torch.from_numpy(t), torch.from_numpy(mask), mask_mode="multiply")
    assert float(got) == pytest.approx(_predecessor_l_neuron(m, t, mask), rel=1e-6)
    ours = l_neuron(torch.from_numpy(m), torch.from_numpy(t), torch.from_numpy(mask))  # valid-trial means
    assert abs(float(ours) - float(got)) > 1e-4
    ones = torch.ones(9, 16, dtype=torch.float64)
    same = [float(l_neuron(torch.from_numpy(m), torch.from_numpy(t), ones, mask_mode=k)) for k in ("valid", "multiply")]
    assert same[0] == pytest.approx(same[1], rel=1e-12)  # all-ones masks (the exported sessions): identical
    with pytest.raises(ValueError, match="mask_mode"):
        l_neuron(torch.from_numpy(m), torch.from_numpy(t), torch.from_numpy(mask), mask_mode="zero")


def test_loss_ema_started_at_one_is_updated_before_the_division():
    rng = _rng()
    values = rng.uniform(0.2, 3.0, size=(3, 2))  # three steps of (L_neuron, L_trial)
    bal = GradientBalancer(mode="loss_ema", weights={"neuron": 1.0, "trial": 0.5}, loss_ema_init=1.0)
    ema = np.array([1.0, 1.0])  # experiment_phase2.py: loss_ema = {'L_neuron': 1.0, 'L_trial': 1.0}
    for vn, vt in values:
        p = torch.nn.Parameter(torch.tensor([1.0], dtype=torch.float64))
        bal.backward({"neuron": vn * p.sum(), "trial": vt * p.sum()}, params=[p])
        ema = 0.99 * ema + 0.01 * np.array([vn, vt])
        expect = vn / (ema[0] + 1e-8) + 0.5 * vt / (ema[1] + 1e-8)  # d/dp of the normalised sum
        assert float(p.grad) == pytest.approx(expect, rel=1e-9)
    # ours starts at the first value: the first step's normalised loss is exactly the weight
    ours = GradientBalancer(mode="loss_ema", weights={"neuron": 1.0, "trial": 0.5})
    p = torch.nn.Parameter(torch.tensor([1.0], dtype=torch.float64))
    ours.backward({"neuron": values[0, 0] * p.sum(), "trial": values[0, 1] * p.sum()}, params=[p])
    vn, vt = values[0]
    assert float(p.grad) == pytest.approx(vn / (vn + 1e-8) + 0.5 * vt / (vt + 1e-8), rel=1e-12)


def test_loss_ema_without_update_divides_by_the_last_average():
    bal = GradientBalancer(mode="loss_ema", weights={"neuron": 1.0, "trial": 0.0}, loss_ema_init=1.0)
    p = torch.nn.Parameter(torch.tensor([1.0], dtype=torch.float64))
    bal.backward({"neuron": 2.0 * p.sum()}, params=[p])  # EMA 0.99 + 0.02 = 1.01
    p.grad = None
    bal.backward({"neuron": 5.0 * p.sum()}, params=[p], update_loss_ema=False)
    assert float(p.grad) == pytest.approx(5.0 / (1.01 + 1e-8), rel=1e-9)
    assert float(bal.loss_ema_neuron) == pytest.approx(1.01)
    with pytest.raises(ValueError, match="loss_ema_init"):
        GradientBalancer(mode="loss_ema", loss_ema_init=0.0)
