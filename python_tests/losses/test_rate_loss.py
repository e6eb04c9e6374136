"""L_rate (per-neuron rates): hand computations of both forms, masks, gradients, errors."""

import math

import pytest
import torch

from eirnn_fast.losses import RATE_FORMS, l_rate


def _const(values, k=2, t=3):
    """[K, T, N] rates equal to ``values[n]`` in every trial and bin."""
    return torch.tensor(values, dtype=torch.float64).expand(k, t, len(values)).clone()


def test_log_form_by_hand():
    # neuron 0: model 1.5, data 0.5 -> log(2 / 1); neuron 1: model 3.5, data 3.5 -> 0;
    # neuron 2: model 0, data 7.5 -> log(0.5 / 8)
    m, d = _const([1.5, 3.5, 0.0]), _const([0.5, 3.5, 7.5])
    hand = (math.log(2.0) ** 2 + 0.0 + math.log(0.5 / 8.0) ** 2) / 3
    assert l_rate(m, d, form="log").item() == pytest.approx(hand, rel=1e-12)
    assert l_rate(d, d, form="log").item() == 0.0
    # only each neuron's mean counts: a zero-mean wiggle in time changes nothing
    wiggle = m + torch.tensor([1.0, -1.0, 0.0], dtype=torch.float64)[None, :, None]
    assert l_rate(wiggle, d, form="log").item() == pytest.approx(hand, rel=1e-12)


def test_log_form_uses_valid_bins_only():
    m, d = _const([2.0]), _const([2.0])
    mask = torch.ones(2, 3, dtype=torch.float64)
    mask[1, 2] = 0.0
    m[1, 2, 0] = 1000.0  # an invalid bin: ignored
    assert l_rate(m, d, mask, form="log").item() == 0.0
    m[0, 0, 0] = 7.0  # one valid bin of five: mean (7 + 4 * 2) / 5 = 3
    assert l_rate(m, d, mask, form="log").item() == pytest.approx(math.log(3.5 / 2.5) ** 2, rel=1e-12)


def test_poisson_form_by_hand():
    # bin 25 ms: model 40 sp/s -> mu = 1 spike per bin; data 80 sp/s -> y = 2 (every bin)
    # deviance per bin: 2 log(2 / 1) - 2 + 1; divided by (mean y + 0.5 * 0.025)
    m, d = _const([40.0, 20.0]), _const([80.0, 0.0])
    dev0 = (2 * math.log(2.0) - 2 + 1) / (2 + 0.0125)
    dev1 = (0.0 - 0.0 + 0.5) / (0.0 + 0.0125)  # y = 0: 0 log 0 = 0, deviance = mu = 0.5
    assert l_rate(m, d, form="poisson").item() == pytest.approx((dev0 + dev1) / 2, rel=1e-12)
    assert l_rate(d[..., :1], d[..., :1], form="poisson").item() == pytest.approx(0.0, abs=1e-15)
    # per-bin: the same means with the model's time course wrong cost something
    shifted = m.clone()
    shifted[:, 0, 0], shifted[:, 1, 0] = 0.0, 80.0
    assert l_rate(shifted[..., :1], d[..., :1], form="poisson") > l_rate(m[..., :1], d[..., :1], form="poisson")


@pytest.mark.parametrize("form", RATE_FORMS)
def test_gradcheck_and_minimum_at_the_data(form):
    g = torch.Generator().manual_seed(0)
    d = torch.rand(3, 4, 2, generator=g, dtype=torch.float64) * 30
    m = (torch.rand(3, 4, 2, generator=g, dtype=torch.float64) * 30 + 1).requires_grad_()
    mask = torch.ones(3, 4, dtype=torch.float64)
    mask[0, 3] = 0
    assert torch.autograd.gradcheck(lambda x: l_rate(x, d, mask, form=form), (m,))
    data_as_model = d.clone().clamp(min=1e-3)
    if form == "log":  # minimum 0 wherever each neuron's mean matches
        assert l_rate(data_as_model, d, mask, form=form).item() == pytest.approx(0.0, abs=1e-12)


def test_bad_form_and_shapes_raise():
    m = _const([1.0])
    with pytest.raises(ValueError, match="rate form must be one of"):
        l_rate(m, m, form="mse")
    with pytest.raises(ValueError, match="differ"):
        l_rate(m, _const([1.0, 2.0]))
