"""protocol = "predecessor": each loss term of one batch against the predecessor's formulas, one
epoch = one full-batch step of its scheme, its split, schedules, pairing; the options one by one."""

import json
import logging
import math

import numpy as np
import predecessor_formulas as pred
import pytest
import torch

from eirnn_fast.data import load_session, make_synthetic_session, train_val_test_split
from eirnn_fast.losses import trial_matching_loss
from eirnn_fast.runstore import RunFolderConflict
from eirnn_fast.train import FitConfig, build_model, cosine_factor, fit, loss_terms, make_split, seed_everything
from eirnn_fast.train.config import ADDED_FIELDS, protocol_fields
from eirnn_fast.train.fit import _Interrupted, _make_optimizer, _make_scheduler

TINY = dict(n_trials=40, n_time_bins=30, n_exc=5, n_inh=3)  # types come out interleaved: [2 2 1 1 2 1 1 1]


@pytest.fixture(scope="module")
def tiny_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "tiny.mat"
    make_synthetic_session(path, seed=2, fmt="v7.3", **TINY)
    return str(path)


def _pred(tiny_file, out, **kw):
    base = dict(data=tiny_file, out=str(out), quiet=True, plots=False, seed=3)
    return FitConfig.preset("predecessor", **{**base, **kw})


def test_preset_overrides_and_switching_back():
    cfg = FitConfig.preset("predecessor")
    assert cfg.protocol_overrides() == {}
    assert (cfg.batch_size, cfg.reg_form, cfg.unit_pairing, cfg.split_scheme, cfg.val_fraction) == (
        0,
        "mean",
        "position",
        "test_first",
        0.2,
    )
    mixed = FitConfig.from_dict({"protocol": "predecessor", "unit_pairing": "type", "lr": 3e-3})
    assert mixed.protocol_overrides() == {"unit_pairing": "type", "lr": 3e-3} and mixed.batch_size == 0
    assert FitConfig.from_dict({"protocol": "ours"}) == FitConfig()
    assert FitConfig().protocol_overrides() == {}
    # a saved config is complete: no preset laid under it; keys it lacks take their old behaviour
    saved = {k: v for k, v in FitConfig.preset("predecessor").to_dict().items() if k not in ADDED_FIELDS}
    old = FitConfig.from_saved(saved)
    assert old.protocol == "ours" and old.reg_form == "sum" and old.batch_size == 0


@pytest.mark.parametrize(
    "field",
    [
        "protocol",
        "split_scheme",
        "unit_pairing",
        "w_in_init",
        "lneuron_mask",
        "reg_form",
        "activity_form",
        "loss_ema_update",
        "plateau_metric",
    ],
)
def test_bad_choices_name_the_argument(field):
    with pytest.raises(ValueError, match=f"^{field} must be one of"):
        FitConfig.from_dict({field: "bogus"})


@pytest.mark.parametrize(
    "values, field",
    [
        ({"loss_ema_init": 0.0}, "loss_ema_init"),
        ({"plateau_min_lr": -1.0}, "plateau_min_lr"),
        ({"cosine_min_factor": 1.5}, "cosine_min_factor"),
        ({"activity_target_rate": -3.0}, "activity_target_rate"),
        ({"alpha_lr_scale": -0.1}, "alpha_lr_scale"),
    ],
)
def test_bad_numbers_name_the_argument(values, field):
    with pytest.raises(ValueError, match=f"^{field} must be"):
        FitConfig.from_dict(values)


def test_each_loss_term_of_one_batch_is_the_predecessor_formula(tiny_file):
    cfg = FitConfig.preset("predecessor", data=tiny_file, activity_weight=0.01)  # activity_reg_0.01
    session = load_session(tiny_file)
    seed_everything(7)
    model, unit_index = build_model(cfg, session)
    model.double()
    d = session.get_all_trials()
    idx = torch.randperm(len(session))[:25]
    targets = d["targets"][idx].double()
    mask = torch.ones(25, TINY["n_time_bins"], dtype=torch.float64)
    mask[torch.randperm(25)[:8], 20:] = 0.0  # ragged trials: the mask conventions must matter
    rates, _ = model(d["inputs"][idx].double())
    rates = rates * 4.0 + torch.linspace(0, 200, rates.shape[2], dtype=torch.float64)  # some units > 100 sp/s
    balanced, extra = loss_terms(
        cfg,
        model,
        rates,
        targets,
        mask,
        unit_index,
        target_mean=float(targets.mean()),
        w_trial=0.5,
        trial_fn=trial_matching_loss,
        trial_kw=cfg.ltrial_kwargs,
    )
    rec = rates.detach()[:, :, : targets.shape[2]]  # the predecessor's model_rates[:, :, :n_recorded]
    with torch.no_grad():
        hand = {
            "neuron": pred.l_neuron(rec, targets, mask),
            "trial": pred.l_trial(rec, targets, mask),
            "reg": pred.l_reg(model.W_rec.double(), model.W_in.double(), 1e-4),
            "activity": pred.l_activity(rec, 0.01),
        }
    got = {**balanced, **extra}
    assert set(got) == set(hand)
    for name in hand:
        assert got[name].item() == pytest.approx(hand[name].item(), rel=1e-6, abs=1e-9), name
    poisson = trial_matching_loss(rates[:, :, unit_index], targets, mask=mask, faithful=True, cost="poisson")
    assert poisson.item() == pytest.approx(pred.l_trial(rec, targets, mask, poisson=True).item(), rel=1e-6)
    assert float(pred.l_activity(rec, 0.0)) > 0  # the max-rate hinge is active in this batch
    # and our protocol gives other numbers for the same batch (so the comparison above can fail)
    ours = FitConfig(activity_weight=0.01, min_units=None)  # the same units as the model above
    _, index_o = build_model(ours, session)
    b_o, e_o = loss_terms(ours, model, rates, targets, mask, index_o, target_mean=float(targets.mean()))
    assert b_o["neuron"].item() != pytest.approx(hand["neuron"].item(), rel=1e-3)
    assert e_o["reg"].item() > 50 * hand["reg"].item()


def test_one_epoch_is_one_full_batch_step_of_the_predecessor_scheme(tiny_file, tmp_path):
    # Poisson L_trial (its poisson_ltrial run): the Euclidean mode z-scores bins where every model
    # trial has the same rate (bin 0 always, all bins without noise) by std + 1e-8, which turns
    # float32 rounding into gradients of any size, so it is reproducible only in its own order
    cfg = _pred(
        tiny_file,
        tmp_path / "run",
        epochs=5,
        noise_scale=0.0,
        activity_weight=0.01,
        ltrial_kwargs={"faithful": True, "cost": "poisson"},
    )
    with pytest.raises(_Interrupted):
        fit(cfg, _interrupt_after=2)
    lines = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    split = json.loads((tmp_path / "run" / "split.json").read_text())
    assert [x["steps"] for x in lines] == [1, 1] and [x["batch_trials"] for x in lines] == [len(split["train"])] * 2
    trained = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)["model"]

    # the same two epochs written out as experiment_phase2.py trains (l. 150-236)
    session = load_session(tiny_file, 99.5)
    seed_everything(cfg.seed)
    model, _ = build_model(cfg, session)
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    d = session.get_all_trials()
    tr = torch.as_tensor(split["train"])
    inputs, targets, mask = d["inputs"][tr], d["targets"][tr], d["mask"][tr]
    n = targets.shape[2]
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    ema = {"n": 1.0, "t": 1.0}
    for _ in range(2):
        opt.zero_grad()
        rec = model(inputs)[0][:, :, :n].double()
        l_n = pred.l_neuron(rec, targets.double(), mask.double())
        l_t = pred.l_trial(rec, targets.double(), mask.double(), poisson=True)
        ema = {"n": 0.99 * ema["n"] + 0.01 * l_n.item(), "t": 0.99 * ema["t"] + 0.01 * l_t.item()}
        loss = (
            l_n / (ema["n"] + 1e-8)
            + 0.5 * l_t / (ema["t"] + 1e-8)
            + pred.l_reg(model.W_rec.double(), model.W_in.double(), 1e-4)
            + pred.l_activity(rec, 0.01)
        )
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)
        opt.step()
    for name, p in model.state_dict().items():
        torch.testing.assert_close(trained[name], p, rtol=1e-4, atol=2e-6, msg=name)
    # two steps of lr 1e-3 moved the weights: the comparison is not between two initial states
    assert float((trained["W_in"] - initial["W_in"]).abs().max()) > 1e-3


def test_test_first_split_is_the_predecessor_split_of_the_rest(tiny_file):
    session = load_session(tiny_file)
    cfg = FitConfig.preset("predecessor", data=tiny_file, test_fraction=0.0, seed=42)
    split = make_split(cfg, session)
    # the predecessor's train_val_split (data_loader.py l. 513-556) with np.random.seed
    np.random.seed(42)
    labels, val = session.conditions["reward"], []
    for label in np.unique(labels):
        idx = np.arange(len(session))[labels == label]
        np.random.shuffle(idx)
        val.extend(idx[: int(len(idx) * 0.2)].tolist())
    assert split["val"] == sorted(val) and split["test"] == []
    cfg = FitConfig.preset("predecessor", data=tiny_file, seed=42)  # test_fraction 0.15
    split = make_split(cfg, session)
    assert split["test"] == train_val_test_split(session, 0.0, 0.15, "reward", 42)["test"] and split["test"]
    assert split["test"] == make_split(FitConfig(data=tiny_file, seed=42), session)["test"]  # ours tests on the same
    assert sorted(split["train"] + split["val"] + split["test"]) == list(range(len(session)))
    rest = np.array(sorted(split["train"] + split["val"]))
    for label in np.unique(labels):  # 20 % of each stratum of the remaining trials
        assert np.isin(split["val"], rest[labels[rest] == label]).sum() == int((labels[rest] == label).sum() * 0.2)


def test_cosine_schedules():
    ours, old = FitConfig(scheduler="cosine", epochs=20, lr_warmup_epochs=4), FitConfig.preset("predecessor")
    pred_cfg = FitConfig.preset("predecessor", scheduler="cosine", epochs=20, lr_warmup_epochs=4)
    assert old.lr_warmup_from_zero and old.cosine_min_factor == 0.01

    def theirs(step, warm=4, total=20):  # get_cosine_schedule_with_warmup (losses.py l. 659-687)
        if step < warm:
            return float(step) / float(max(1, warm))
        progress = float(step - warm) / float(max(1, total - warm))
        return max(0.01, 0.5 * (1.0 + math.cos(math.pi * progress)))

    assert [cosine_factor(pred_cfg, e) for e in range(20)] == pytest.approx([theirs(e) for e in range(20)])
    assert [cosine_factor(ours, e) for e in range(4)] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert cosine_factor(ours, 19) < 0.01 == cosine_factor(pred_cfg, 19)


def test_plateau_on_validation_l_neuron_stops_at_min_lr():
    model = torch.nn.Linear(2, 1)
    cfg = FitConfig.preset("predecessor", plateau_patience=1, lr=4e-5)
    opt = _make_optimizer(cfg, model)
    sched = _make_scheduler(cfg, opt)
    lrs = []
    for loss in [1.0, 0.9, 0.95, 0.96, 0.97, 0.98, 0.99, 1.0]:  # a loss: lower is better
        sched.step(loss)
        lrs.append(opt.param_groups[0]["lr"])
    assert lrs[:3] == pytest.approx([4e-5] * 3) and lrs[3] == pytest.approx(2e-5) and lrs[-1] == pytest.approx(1e-5)


def test_alpha_group_learning_rate_is_scaled(tiny_file):
    cfg = FitConfig(data=tiny_file, learnable_alpha="neuron", alpha_lr_scale=0.1, lr=1e-2)
    seed_everything(0)
    model, _ = build_model(cfg, load_session(tiny_file))
    opt = _make_optimizer(cfg, model)
    groups = {g["name"]: g for g in opt.param_groups}
    assert groups["alpha"]["lr"] == pytest.approx(1e-3) and groups["weights"]["lr"] == pytest.approx(1e-2)
    assert [p is model._alpha_logit for p in groups["alpha"]["params"]] == [True]
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    model(torch.rand(3, 6, 14))[0].sum().backward()
    opt.step()  # Adam's first step moves every parameter with a gradient by its group's lr
    step_alpha = (model._alpha_logit.detach() - before["_alpha_logit"]).abs().max()
    step_w = (model.W_in.detach() - before["W_in"]).abs().max()
    assert float(step_alpha) == pytest.approx(1e-3, rel=1e-3) and float(step_w) == pytest.approx(1e-2, rel=1e-3)


def test_w_in_init_seed002_and_position_pairing(tiny_file):
    session = load_session(tiny_file)
    seed_everything(5)
    m1, i1 = build_model(FitConfig(data=tiny_file), session)
    seed_everything(5)
    m2, i2 = build_model(FitConfig(data=tiny_file, w_in_init="seed002", unit_pairing="position"), session)
    torch.testing.assert_close(m2.W_in, m1.W_in * 2.5 - 0.5)  # the same draws, on U(-0.5, 2.0)
    w_in = m2.W_in.detach()
    assert -0.5 <= float(w_in.min()) < 0 and float(w_in.max()) <= 2.0
    torch.testing.assert_close(m2.W_out, m1.W_out)  # nothing else changes
    assert i2.tolist() == list(range(8)) and i1.tolist() != i2.tolist()
    assert (i1[torch.as_tensor(session.neuron_type) == 2] >= m1.n_exc).all()


def test_predecessor_fit_reports_its_protocol_and_split(tiny_file, tmp_path):
    r = fit(_pred(tiny_file, tmp_path / "run", epochs=2, unit_pairing="type"))
    assert r["protocol"] == "predecessor" and r["protocol_overrides"] == {"unit_pairing": "type", "epochs": 2}
    assert "held out first" in r["split_description"] and r["n_test"] > 0
    assert r["metric_definition"]["eval_noise"] is True
    r = fit(_pred(tiny_file, tmp_path / "pos", epochs=1))
    assert r["model"]["unit_pairing"] == "position" and r["model"]["recorded_fitted_by_other_type"] > 0


def test_old_checkpoint_without_new_fields_resumes(tiny_file, tmp_path, caplog):
    # an old run computed what the ADDED_FIELDS values compute (e.g. no rate term): resume it so
    kw = dict(data=tiny_file, epochs=4, batch_size=16, quiet=True, plots=False, patience=0, seed=3)
    kw.update(rate_weight=0.0, min_units=None)  # the ADDED_FIELDS values of the two newest fields
    straight = fit(FitConfig(out=str(tmp_path / "a"), **kw))
    with pytest.raises(_Interrupted):
        fit(FitConfig(out=str(tmp_path / "b"), **kw), _interrupt_after=2)
    ckpt_path = tmp_path / "b" / "checkpoint.pt"
    ckpt = torch.load(ckpt_path, weights_only=False)
    ckpt["config"] = {k: v for k, v in ckpt["config"].items() if k not in ADDED_FIELDS}  # as written before
    ckpt["config"]["threads"] = 7  # and with another thread count: not a different run
    torch.save(ckpt, ckpt_path)
    first = (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()[:2]
    with caplog.at_level(logging.WARNING, logger="eirnn_fast.train.fit"):
        resumed = fit(FitConfig(out=str(tmp_path / "b"), **kw))
    assert not [r for r in caplog.records if r.name == "eirnn_fast.train.fit"]
    assert resumed["test_psth_corr"] == straight["test_psth_corr"]
    assert (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()[:2] == first  # not re-run
    # a checkpoint of another computation refuses, naming the key; force starts afresh
    with pytest.raises(_Interrupted):
        fit(FitConfig(out=str(tmp_path / "c"), **kw), _interrupt_after=1)
    with pytest.raises(RunFolderConflict, match="reg_form: 'sum' -> 'mean'"):
        fit(FitConfig(out=str(tmp_path / "c"), reg_form="mean", **kw))
    r = fit(FitConfig(out=str(tmp_path / "c"), reg_form="mean", **kw), force=True)
    assert r["epochs_run"] == 4


def test_a_checkpoint_without_the_rate_fields_takes_rate_weight_0(tiny_file, tmp_path, caplog):
    kw = dict(data=tiny_file, epochs=3, batch_size=16, quiet=True, plots=False, patience=0, seed=3)
    with pytest.raises(_Interrupted):
        fit(FitConfig(out=str(tmp_path / "r"), rate_weight=0.0, **kw), _interrupt_after=1)
    ckpt_path = tmp_path / "r" / "checkpoint.pt"
    ckpt = torch.load(ckpt_path, weights_only=False)
    for key in ("rate_weight", "rate_form", "session"):  # written before issue 15
        del ckpt["config"][key]
    torch.save(ckpt, ckpt_path)
    assert FitConfig.from_saved(ckpt["config"]).rate_weight == 0.0
    assert ADDED_FIELDS["rate_weight"] == 0.0 and "rate_weight" in protocol_fields("predecessor")
    with pytest.raises(RunFolderConflict, match="rate_weight: 0.0 -> 0.5"):  # another computation: refused
        fit(FitConfig(out=str(tmp_path / "r"), rate_weight=0.5, **kw))
    r = fit(FitConfig(out=str(tmp_path / "r"), rate_weight=0.0, **kw))  # the old run: resumes to the end
    assert r["epochs_run"] == 3


@pytest.mark.parametrize("update, count", [("step", 6), ("epoch", 3)])
def test_loss_ema_updates_per_step_or_per_epoch(tiny_file, tmp_path, update, count):
    # min_units None: the 80-unit network runs away on this tiny session's first step (an undone,
    # uncounted step), which this count of updates is not about
    kw = dict(data=tiny_file, out=str(tmp_path / update), epochs=3, batch_size=15, quiet=True, plots=False)
    fit(
        FitConfig(balance="loss_ema", loss_ema_update=update, val_fraction=0.2, test_fraction=0.2, min_units=None, **kw)
    )
    lines = [json.loads(x) for x in (tmp_path / update / "metrics.jsonl").read_text().splitlines()]
    assert [x["steps"] for x in lines] == [2, 2, 2]
    balancer = torch.load(tmp_path / update / "checkpoint.pt", weights_only=False)["balancer"]
    assert int(balancer["loss_count_neuron"]) == count


def test_min_units_grows_a_small_network_at_4_to_1_and_only_then(tiny_file):
    # 5 E + 3 I recorded: the 4:1 padding gives 12 E + 3 I = 15 units; min_units 80 grows that to
    # 64 E + 16 I (create_model_from_data's target_total), every recorded neuron still fitted by a
    # unit of its own type; None, a min_units below the padding, or no padding keep the old sizes
    session = load_session(tiny_file)
    types = np.asarray(session.neuron_type)
    sizes = {}
    for kw in ({}, {"min_units": None}, {"min_units": 10}, {"min_units": 81}, {"enforce_ratio": False}):
        model, index = build_model(FitConfig(**kw), session)
        sizes[str(kw)] = (model.n_exc, model.n_inh)
        is_exc = (index < model.n_exc).numpy()
        assert (is_exc == (types == 1)).all() and len(set(index.tolist())) == len(types)
    assert sizes["{}"] == (64, 16) and FitConfig().min_units == 80
    assert sizes["{'min_units': None}"] == (12, 3) and sizes["{'min_units': 10}"] == (12, 3)
    assert sum(sizes["{'min_units': 81}"]) == 81 and sizes["{'enforce_ratio': False}"] == (5, 3)
    assert FitConfig.preset("predecessor").min_units is None and ADDED_FIELDS["min_units"] is None
    model, _ = build_model(FitConfig(model_kwargs={"target_total": 20}), session)  # an explicit size wins
    assert (model.n_exc, model.n_inh) == (16, 4)
    for bad in (0, -3):
        with pytest.raises(ValueError, match="min_units must be >= 1 or None"):
            FitConfig(min_units=bad).validate()
    with pytest.raises(TypeError, match="min_units"):
        FitConfig(min_units=2.5).validate()
