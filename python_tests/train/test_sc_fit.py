"""End-to-end SC fits on tiny data: artefacts, resume after interruption, curriculum, evaluation."""

import json

import numpy as np
import pytest
import torch

from eirnn_fast.data import make_synthetic_session
from eirnn_fast.train import FitConfig, fit, trial_weight_at
from eirnn_fast.train.diagnose import diagnose, evaluate_run, format_diagnosis
from eirnn_fast.train.fit import _Interrupted

TINY = dict(n_trials=40, n_time_bins=30, n_exc=5, n_inh=3)


@pytest.fixture(scope="module")
def tiny_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "tiny.mat"
    make_synthetic_session(path, seed=2, fmt="v7.3", **TINY)
    return str(path)


def _cfg(tiny_file, out, **kw):
    base = dict(
        data=tiny_file,
        out=str(out),
        epochs=4,
        batch_size=16,
        quiet=True,
        plots=False,
        patience=0,
        val_fraction=0.2,
        test_fraction=0.2,
        seed=3,
    )
    base.update(kw)
    return FitConfig(**base)


def test_fit_writes_all_artefacts(tiny_file, tmp_path):
    cfg = _cfg(tiny_file, tmp_path / "run", plots=True)
    r = fit(cfg)
    for name in (
        "config.json",
        "split.json",
        "metrics.jsonl",
        "checkpoint.pt",
        "result.json",
        "training_curves.png",
        "psth_test.png",
    ):
        assert (tmp_path / "run" / name).is_file(), name
    lines = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [line["epoch"] for line in lines] == [0, 1, 2, 3]
    saved = json.loads((tmp_path / "run" / "result.json").read_text())
    assert saved["epochs_run"] == 4 and np.isfinite(saved["test_psth_corr"])
    assert set(saved) >= {"test_psth_corr", "noise_ceiling", "best_val_psth_corr", "metric_definition", "session"}
    split = json.loads((tmp_path / "run" / "split.json").read_text())
    assert not set(split["train"]) & set(split["test"]) and not set(split["val"]) & set(split["test"])
    assert r["metric_definition"]["eval_noise"] is False
    # every recorded interneuron is fitted by an I unit
    types = np.array(r["session"]["neuron_type"])
    idx = np.array(r["model"]["unit_index"])
    assert (idx[types == 2] >= r["model"]["n_exc"]).all() and (idx[types == 1] < r["model"]["n_exc"]).all()
    assert json.loads((tmp_path / "run" / "config.json").read_text())["epochs"] == 4


@pytest.mark.parametrize(
    "extra",
    [
        dict(),
        dict(
            ltrial_weight=0.5,
            warmup_epochs=1,
            ramp_epochs=2,
            balance="param_norm",
            scheduler="cosine",
            lr_warmup_epochs=2,
        ),
    ],
)
def test_resume_after_interruption_gives_the_same_result(tiny_file, tmp_path, extra):
    straight = fit(_cfg(tiny_file, tmp_path / "a", **extra))
    with pytest.raises(_Interrupted):
        fit(_cfg(tiny_file, tmp_path / "b", **extra), _interrupt_after=2)
    torch.manual_seed(12345)  # whatever happened in between must not matter
    resumed = fit(_cfg(tiny_file, tmp_path / "b", **extra))
    assert resumed["test_psth_corr"] == straight["test_psth_corr"]
    assert resumed["best_epoch"] == straight["best_epoch"]
    a = (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()
    b = (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()
    strip = lambda lines: [{k: v for k, v in json.loads(x).items() if "seconds" not in k} for x in lines]  # noqa: E731
    assert strip(a) == strip(b)
    sa = torch.load(tmp_path / "a" / "checkpoint.pt", weights_only=False)["model"]
    sb = torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=False)["model"]
    for k in sa:
        torch.testing.assert_close(sa[k], sb[k], rtol=0, atol=0)


def test_curriculum_ramp():
    cfg = FitConfig(ltrial_weight=0.5, warmup_epochs=10, ramp_epochs=100)
    assert trial_weight_at(cfg, 9) == 0.0
    assert trial_weight_at(cfg, 10) == pytest.approx(0.005)
    assert trial_weight_at(cfg, 109) == pytest.approx(0.5) and trial_weight_at(cfg, 500) == 0.5
    assert trial_weight_at(FitConfig(), 50) == 0.0


def test_trial_loss_and_balancers_run(tiny_file, tmp_path):
    for mode in ("loss_ema", "activity_ema"):
        r = fit(_cfg(tiny_file, tmp_path / mode, epochs=2, ltrial_weight=0.5, balance=mode, scheduler="none"))
        assert np.isfinite(r["test_psth_corr"]) and r["ltrial_impl"]
        line = json.loads((tmp_path / mode / "metrics.jsonl").read_text().splitlines()[-1])
        assert "train_l_trial" in line


def test_trial_matching_within_condition_groups(tiny_file, tmp_path, monkeypatch):
    import importlib

    fit_module = importlib.import_module("eirnn_fast.train.fit")  # the module (the package exports fit())

    seen = []
    real, name = fit_module.get_trial_matching_loss()

    def spy(*args, **kw):
        seen.append(kw.get("groups"))
        return real(*args, **kw)

    monkeypatch.setattr(fit_module, "get_trial_matching_loss", lambda: (spy, name))
    r = fit(_cfg(tiny_file, tmp_path / "groups", epochs=1, ltrial_weight=0.5, ltrial_group_by="location"))
    assert np.isfinite(r["test_psth_corr"]) and seen
    assert all(g is not None and g.dtype == torch.long and g.min() >= 0 for g in seen)
    with pytest.raises(ValueError, match="ltrial_group_by='colour' is not a trial label"):
        fit(_cfg(tiny_file, tmp_path / "bad", epochs=1, ltrial_weight=0.5, ltrial_group_by="colour"))


def test_early_stopping_after_patience(tiny_file, tmp_path):
    r = fit(_cfg(tiny_file, tmp_path / "stop", epochs=50, lr=1e-30, patience=3, scheduler="none"))
    lines = (tmp_path / "stop" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 4  # nothing improves after epoch 0 (lr 0): 3 more epochs, then stop
    assert r["best_epoch"] == 0


def test_config_validation_and_file(tmp_path):
    with pytest.raises(ValueError, match="unknown config key"):
        FitConfig.from_dict({"epochz": 3})
    with pytest.raises(ValueError, match="scheduler"):
        FitConfig.from_dict({"scheduler": "step"})
    toml = tmp_path / "c.toml"
    toml.write_text('[fit]\nepochs = 7\nlearnable_alpha = "population"\n')
    cfg = FitConfig.from_file(toml)
    assert cfg.epochs == 7 and cfg.learnable_alpha == "population"


def test_evaluate_and_diagnose(tiny_file, tmp_path):
    fit(_cfg(tiny_file, tmp_path / "run", epochs=2))
    ev = evaluate_run(tmp_path / "run", plots=False)
    res = json.loads((tmp_path / "run" / "result.json").read_text())
    assert ev["psth_corr"] == pytest.approx(res["test_psth_corr"])
    ev_all = evaluate_run(tmp_path / "run" / "checkpoint.pt", data=tiny_file, plots=False)
    assert ev_all["n_trials"] == 40
    from eirnn_fast.data import load_session

    report = diagnose(load_session(tiny_file), n_trials=4)
    text = format_diagnosis(report)
    assert "W_rec spectral radius" in text and "Input modulation ratio" in text
    assert report["weights"]["W_rec_spectral_radius"] == pytest.approx(0.9, rel=1e-3)
    assert len(report["inputs"]["channels"]) == 14


def test_rate_term_in_the_batch_loss_and_rate_error_in_the_result(tiny_file, tmp_path):
    from eirnn_fast.data import load_session
    from eirnn_fast.losses import l_rate
    from eirnn_fast.metrics import rate_error
    from eirnn_fast.train.fit import build_model, loss_terms

    session = load_session(tiny_file)
    d = session.get_all_trials()
    for form in ("log", "poisson"):
        cfg = _cfg(tiny_file, tmp_path / "x", rate_weight=0.3, rate_form=form)
        model, unit_index = build_model(cfg, session)
        rates, _ = model(d["inputs"][:10])
        _, extra = loss_terms(cfg, model, rates, d["targets"][:10], d["mask"][:10], unit_index, target_mean=10.0)
        hand = 0.3 * l_rate(rates[:, :, unit_index], d["targets"][:10], d["mask"][:10], form=form)
        assert extra["rate"].item() == pytest.approx(hand.item(), rel=1e-6)
    off = FitConfig(rate_weight=0.0)
    model, unit_index = build_model(off, session)
    rates, _ = model(d["inputs"][:10])
    assert (
        "rate" not in loss_terms(off, model, rates, d["targets"][:10], d["mask"][:10], unit_index, target_mean=1.0)[1]
    )

    r = fit(_cfg(tiny_file, tmp_path / "run", epochs=2, rate_weight=0.5))
    assert r["test_rate_error_median"] == r["test"]["rate_error"]["median_abs_log_ratio"]
    assert r["test_frac_off_2x"] == r["test"]["rate_error"]["frac_off_2x"]
    lines = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert all(line["train_rate"] > 0 for line in lines)
    ev = evaluate_run(tmp_path / "run", plots=True)
    assert ev["rate_error_median"] == pytest.approx(r["test_rate_error_median"])
    assert (tmp_path / "run" / "psth_eval.png").is_file()
    # the same numbers from the metric on the saved split
    split = json.loads((tmp_path / "run" / "split.json").read_text())
    assert len(ev["metrics"]["rate_error"]["per_neuron_log_ratio"]) == TINY["n_exc"] + TINY["n_inh"]
    assert rate_error(np.zeros((3, 2, 1)), np.zeros((3, 2, 1)))["median_abs_log_ratio"] == 0.0
    assert len(split["test"]) == ev["n_trials"]


def test_session_option_selects_an_embedded_session(tmp_path):
    from eirnn_fast.train.fit import load_fit_data

    s = load_fit_data(FitConfig(session="08_14", max_trials=12))
    assert len(s) == 12 and s.rates.shape[2] == 41
    assert load_fit_data(FitConfig(max_trials=5)).rates.shape[2] == 14  # None: 08_13
    with pytest.raises(ValueError, match="give data or session, not both"):
        FitConfig.from_dict({"session": "08_14", "data": "x.mat"})
    with pytest.raises(ValueError, match="session must be one of"):
        FitConfig.from_dict({"session": "08_15"})
    with pytest.raises(ValueError, match="rate_form must be one of"):
        FitConfig.from_dict({"rate_form": "mse"})
    with pytest.raises(ValueError, match="rate_weight must be >= 0"):
        FitConfig.from_dict({"rate_weight": -1.0})


def test_a_runaway_step_is_undone_and_halves_the_learning_rate(tiny_file, tmp_path, monkeypatch):
    import importlib

    fit_module = importlib.import_module("eirnn_fast.train.fit")  # the module (the package exports fit())
    real, calls = fit_module.loss_terms, {"n": 0}

    def runaway_on_the_fifth_step(*args, **kwargs):
        balanced, extra = real(*args, **kwargs)
        calls["n"] += 1
        if calls["n"] == 5:  # epoch 1, step 2 (2 steps per epoch): rates ran away -> inf loss
            balanced["neuron"] = balanced["neuron"] * float("inf")
        return balanced, extra

    monkeypatch.setattr(fit_module, "loss_terms", runaway_on_the_fifth_step)
    r = fit(_cfg(tiny_file, tmp_path / "run", epochs=4, batch_size=16, scheduler="none"))
    lines = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [line["runaway_steps"] for line in lines] == [0, 0, 1, 0]
    assert [line["steps"] for line in lines] == [2, 2, 1, 2]
    assert [line["lr"] for line in lines] == [1e-2, 1e-2, 5e-3, 5e-3]
    assert all(np.isfinite(line["val_psth_corr"]) for line in lines) and np.isfinite(r["test_psth_corr"])
