"""Issue 18: the trainer turns Sinkhorn's per-call warning off and reports L_trial's convergence once
per epoch (metrics.jsonl), accumulated on the device without a host sync per batch."""

import collections
import json
import logging
import warnings

import torch

from eirnn_fast.data import make_synthetic_session
from eirnn_fast.losses import trial_matching_loss
from eirnn_fast.losses.trial_matching import OTStats
from eirnn_fast.train import FitConfig, fit


def _count_host_syncs(fn, monkeypatch):
    """Calls of the tensor methods that read a value back to the host while ``fn`` runs."""
    calls = collections.Counter()
    for name in ("item", "cpu", "tolist", "__float__", "__int__", "__bool__"):
        original = getattr(torch.Tensor, name)

        def counted(self, *args, _original=original, _name=name, **kwargs):
            calls[_name] += 1
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counted)
    fn()
    monkeypatch.undo()
    return dict(calls)


def _rates(seed, k=8):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(k, 6, 5, generator=g) * 10


def test_ot_stats_count_unconverged_solves_and_the_largest_error():
    stats = OTStats()
    kw = dict(eps=0.01, max_iter=2, tol=1e-9)
    v = trial_matching_loss(_rates(0), _rates(1), ot_stats=stats, **kw)
    assert torch.equal(v, trial_matching_loss(_rates(0), _rates(1), **kw))  # same value with the stats
    trial_matching_loss(_rates(2), _rates(3), ot_stats=stats, groups=torch.tensor([0, 0, 0, 0, 1, 1, 1, 1]), **kw)
    got = stats.read()
    assert got["ot_solves"] == 3 and got["ot_unconverged"] == 3 and got["ot_max_marginal_error"] > 1e-9
    assert stats.read() == {"ot_solves": 0, "ot_unconverged": 0, "ot_max_marginal_error": 0.0}  # read resets
    trial_matching_loss(_rates(0), _rates(1), ot_stats=stats, eps=1.0, max_iter=1000, tol=1e-4)
    assert stats.read()["ot_unconverged"] == 0


def test_accumulating_the_stats_adds_no_host_sync(monkeypatch):
    stats = OTStats()
    x, y = _rates(0), _rates(1)
    kw = dict(eps=0.05, max_iter=50, tol=1e-6)
    plain = _count_host_syncs(lambda: trial_matching_loss(x, y, **kw), monkeypatch)
    with_stats = _count_host_syncs(lambda: trial_matching_loss(x, y, ot_stats=stats, **kw), monkeypatch)
    assert with_stats == plain, (with_stats, plain)


def test_fit_reports_ltrial_convergence_per_epoch_without_warning_per_batch(tmp_path, caplog):
    path = tmp_path / "tiny.mat"
    make_synthetic_session(path, seed=4, fmt="v5", n_trials=30, n_time_bins=20, n_exc=4, n_inh=2)
    cfg = FitConfig(
        data=str(path),
        out=str(tmp_path / "run"),
        epochs=2,
        batch_size=8,
        ltrial_weight=0.5,
        ltrial_kwargs={"max_iter": 2, "tol": 1e-9, "eps": 0.01},
        plots=False,
        quiet=True,
    )
    with warnings.catch_warnings(record=True) as seen, caplog.at_level(logging.WARNING, logger="eirnn_fast.train"):
        warnings.simplefilter("always")
        fit(cfg)
    assert not [w for w in seen if "sinkhorn" in str(w.message)]  # no per-call SinkhornConvergenceWarning
    lines = [json.loads(s) for s in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert len(lines) == 2
    for line in lines:
        assert line["ltrial_ot_solves"] == line["steps"] and line["ltrial_ot_unconverged"] == line["steps"]
        assert line["ltrial_ot_max_marginal_error"] > 1e-9
    told = [r for r in caplog.records if "Sinkhorn solves did not converge" in r.getMessage()]
    assert len(told) == 1  # once, then counted in metrics.jsonl


def test_fit_converged_ltrial_reports_zero(tmp_path):
    path = tmp_path / "tiny.mat"
    make_synthetic_session(path, seed=4, fmt="v5", n_trials=30, n_time_bins=20, n_exc=4, n_inh=2)
    cfg = FitConfig(
        data=str(path),
        out=str(tmp_path / "run"),
        epochs=1,
        batch_size=8,
        ltrial_weight=0.5,
        ltrial_kwargs={"eps": 1.0, "tol": 1e-3},
        plots=False,
        quiet=True,
    )
    fit(cfg)
    line = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[0])
    assert line["ltrial_ot_unconverged"] == 0 and line["ltrial_ot_solves"] == line["steps"] > 0
