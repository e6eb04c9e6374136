"""The trainer's batch losses (``loss_terms``) equal the formulas on the gathered recorded units.

``loss_terms`` selects the recorded units inside the losses (after L_neuron's trial mean, as
L_trial's population-mean weights) instead of gathering ``[B, T, N_recorded]`` first; on a fixed
batch (noise off, same weights) every term and the gradient must be the ones of the old path.
"""

import numpy as np
import pytest
import torch

import eirnn_fast.losses as L
from eirnn_fast.data import make_synthetic_session
from eirnn_fast.models import select_units
from eirnn_fast.train import FitConfig, build_model
from eirnn_fast.train.fit import loss_terms


@pytest.mark.parametrize("feature", ["pop_mean", "pop_mean_by_type"])
def test_loss_terms_match_the_gathered_formulas_on_a_fixed_batch(feature):
    session = make_synthetic_session(seed=3, n_trials=40)
    torch.manual_seed(0)
    np.random.seed(0)
    cfg = FitConfig(backend="reference", rate_weight=0.1, activity_weight=0.01, ltrial_weight=0.5)
    model, unit_index = build_model(cfg, session)
    data = session.get_all_trials()
    x, y, m = data["inputs"][:16], data["targets"][:16], data["mask"][:16].clone()
    m[3, 100:] = 0  # a trial ending early
    neuron_type = torch.as_tensor(session.neuron_type)
    kw = {"neuron_type": neuron_type, "backend": "reference", "feature": feature}
    rates, _ = model(x, noise=False)
    new, extra = loss_terms(
        cfg, model, rates, y, m, unit_index, target_mean=7.0, w_trial=0.5, trial_fn=L.trial_matching_loss, trial_kw=kw
    )
    rec = select_units(rates, unit_index)
    old = {
        "neuron": L.l_neuron(rec, y, m),
        "trial": L.trial_matching_loss(rec, y, mask=m, **kw),
        "rate": cfg.rate_weight * L.l_rate(rec, y, m),
    }
    params = [p for p in model.parameters() if p.requires_grad]
    for name, value in old.items():
        got = new[name] if name in new else extra[name]
        assert float(got.detach()) == pytest.approx(float(value.detach()), rel=1e-6, abs=1e-7), name
        g_new = torch.autograd.grad(got, params, retain_graph=True, allow_unused=True)
        g_old = torch.autograd.grad(value, params, retain_graph=True, allow_unused=True)
        for a, b in zip(g_new, g_old):
            assert (a is None) == (b is None)
            if a is not None:
                # float32 sums in another order, through a Sinkhorn solve at tol 1e-6
                assert float((a - b).abs().max()) <= 1e-5 * max(float(b.abs().max()), 1.0), name
