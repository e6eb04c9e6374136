"""A training step of the trainer's batch computation makes no host syncs (GPU readiness, issue 19).

``Tensor.item``, ``.cpu``, ``.tolist``, ``__float__``, ``__int__`` and ``__bool__`` are patched to
count calls while one step runs: forward, ``loss_terms`` (L_neuron, L_reg, L_rate, L_activity),
the balancer's backward, gradient clipping and the trainer's Adam. The per-epoch logging (outside
this step) may convert; the step itself must not.
"""

import collections

import numpy as np
import pytest
import torch
from testutils import requires_compiled

from eirnn_fast.data import make_synthetic_session
from eirnn_fast.losses import GradientBalancer
from eirnn_fast.train import FitConfig, build_model
from eirnn_fast.train.fit import _make_optimizer, loss_terms

PATCHED = ("item", "cpu", "tolist", "__float__", "__int__", "__bool__")


def _step_fn(backend, noise):
    session = make_synthetic_session(seed=1, n_trials=24)
    torch.manual_seed(0)
    np.random.seed(0)
    cfg = FitConfig(backend=backend, learnable_alpha="neuron", rate_weight=0.1, activity_weight=0.01)
    model, unit_index = build_model(cfg, session)
    optimizer = _make_optimizer(cfg, model)
    balancer = GradientBalancer(("neuron", "trial"), mode="none")
    params = [p for p in model.parameters() if p.requires_grad]
    data = session.get_all_trials()
    x, y, m = data["inputs"][:12], data["targets"][:12], data["mask"][:12]

    def step():
        rates, _ = model(x, noise=noise)
        losses, extras = loss_terms(cfg, model, rates, y, m, unit_index, target_mean=7.0)
        optimizer.zero_grad(set_to_none=True)
        balancer.backward(losses, extra=sum(extras.values()), params=params)
        torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
        optimizer.step()

    return step


def _count_host_syncs(fn, monkeypatch):
    calls = collections.Counter()
    for name in PATCHED:
        original = getattr(torch.Tensor, name)

        def counted(self, *args, _original=original, _name=name, **kwargs):
            calls[_name] += 1
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counted)
    fn()
    monkeypatch.undo()
    return dict(calls)


def test_the_patch_counts_what_it_should(monkeypatch):
    t = torch.ones(3)
    calls = _count_host_syncs(lambda: (float(t.sum()), t.tolist(), bool(t.all()), t.sum().item()), monkeypatch)
    assert calls == {"__float__": 1, "tolist": 1, "__bool__": 1, "item": 1}


@pytest.mark.parametrize(
    "backend, noise",
    [
        ("reference", True),  # the path a CUDA device takes: batched randn noise
        pytest.param("fused", False, marks=requires_compiled),  # counter noise draws its seed on the host
    ],
)
def test_a_training_step_makes_no_host_syncs(backend, noise, monkeypatch):
    step = _step_fn(backend, noise)
    step()  # first step: optimizer state created
    assert _count_host_syncs(step, monkeypatch) == {}
