"""FlyVis GNN trainer: config names, regularisers, resume, end-to-end recovery on a toy ground truth."""

import json

import numpy as np
import pytest
import torch

from eirnn_fast.flyvis import metrics as M
from eirnn_fast.flyvis.gnn import FlyVisGNN
from eirnn_fast.flyvis.gnn_toy import make_toy_dataset, make_toy_ground_truth
from eirnn_fast.flyvis.train import (
    FlyVisTrainConfig,
    annealed_coefficients,
    flyvis_evaluate_main,
    flyvis_train_main,
    regularization_terms,
    train_flyvis_gnn,
)


def test_config_accepts_old_and_new_names_and_sections():
    cfg = FlyVisTrainConfig.from_dict(
        {
            "graph_model": {
                "signal_model_name": "PDE_N9_A",
                "lin_edge": {"hidden_dim": 64, "n_layers": 4},
                "lin_phi": {"hidden_dim": 32, "n_layers": 3},
                "embedding_dim": 2,
                "lin_edge_positive": True,
            },
            "training": {
                "learning_rate_start": "1.2E-3",
                "learning_rate_W_start": 6e-4,
                "learning_rate_embedding_start": 1.55e-3,
                "learning_rate_update_start": 0,
                "coeff_edge_diff": 750,
                "coeff_edge_norm": 0.9,
                "coeff_edge_weight_L1": 0.29,
                "coeff_phi_weight_L1": 0.5,
                "coeff_phi_weight_L1_rate": 0.4,
                "coeff_phi_weight_L2": 0.001,
                "coeff_W_L1": 3.5e-5,
                "coeff_W_L1_rate": 0.5,
                "coeff_W_L2": 2.5e-6,
                "batch_size": 2,
                "data_augmentation_loop": 20,
                "grad_clip_W": 0.5,
                "recurrent_training": True,
                "time_step": 3,
                "noise_recurrent_level": 0.01,
                "recurrent_training_start_epoch": 1,
                "n_epochs": 2,
            },
            "simulation": {"noise_model_level": 0.05, "delta_t": 0.02},
            "description": "seed 004 locked table",
        }
    )
    assert cfg.variant == "A" and cfg.hidden_dim == 64 and cfg.n_layers == 4
    assert cfg.hidden_dim_update == 32 and cfg.lr == 1.2e-3 and cfg.lr_W == 6e-4
    assert cfg.coeff_g_phi_diff == 750.0 and cfg.coeff_f_theta_weight_L1 == 0.5
    assert cfg.coeff_f_theta_weight_L1_rate == 0.4 and cfg.time_step == 3
    assert cfg.extra["simulation"]["noise_model_level"] == 0.05
    new = FlyVisTrainConfig.from_dict({"lr": 1e-3, "coeff_g_phi_norm": 2.0, "variant": "flyvis_B"})
    assert new.variant == "B" and new.coeff_g_phi_norm == 2.0
    assert FlyVisTrainConfig.from_dict({"lr_emb": 2e-3}).lr_embedding == 2e-3  # seed 004's table name


@pytest.mark.parametrize(
    "d, key",
    [
        ({"coeff_edge_dif": 1.0}, "coeff_edge_dif"),
        ({"training": {"batch_size": 0}}, "batch_size"),
        ({"learning_rate_start": -1.0}, "lr"),
        ({"training": {"learning_rate_W_start": "fast"}}, "lr_W"),
        ({"w_init_mode": "ones"}, "w_init"),
        ({"lin_edge": {"width": 3}}, "lin_edge.width"),
        ({"lr": 1e-3, "learning_rate_start": 2e-3}, "learning_rate_start"),
    ],
)
def test_bad_config_names_the_key(d, key):
    with pytest.raises(ValueError, match=f"config key '{key}'") as e:
        FlyVisTrainConfig.from_dict(d)
    if key == "coeff_edge_dif":
        assert "did you mean 'coeff_edge_diff'" in str(e.value)


def test_yaml_roundtrip(tmp_path):
    (tmp_path / "c.yaml").write_text("training:\n  coeff_W_L1: 1.0E-4\n  n_epochs: 3\ndata_path: data.npz\n")
    cfg = FlyVisTrainConfig.from_yaml(tmp_path / "c.yaml")
    assert cfg.coeff_W_L1 == 1e-4 and cfg.n_epochs == 3 and cfg.data_path == str(tmp_path / "data.npz")
    assert FlyVisTrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg


def _toy_model():
    g, _ = make_toy_ground_truth(n_neurons=20, n_types=2, mean_in_degree=4, seed=0)
    return FlyVisGNN(g, hidden_dim=4, n_layers=2, w_init="randn", seed=0, dtype=torch.float64)


#: every coefficient regularization_terms reads, all off
NO_REGULARISER = {
    k: 0.0
    for k in (
        "W_L1",
        "W_L2",
        "g_phi_weight_L1",
        "g_phi_weight_L2",
        "f_theta_weight_L1",
        "f_theta_weight_L2",
        "g_phi_diff",
        "g_phi_norm",
    )
}


def test_regulariser_values_on_toy_mlps():
    """Each regulariser against a hand computation of NeuralGraph's formula (the seeds' code) and of
    flyvis-gnn's where they differ."""
    m = _toy_model()
    W = m.W.detach()
    v = torch.linspace(-1, 1, 20, dtype=torch.float64)
    base = dict(NO_REGULARISER)
    tot, parts = regularization_terms(m, v, 1.0, {**base, "W_L1": 2.0})
    assert float(tot.detach()) == pytest.approx(2.0 * float(W.abs().sum()))
    # NeuralGraph applies W_L2 (a norm, not squared) beside W_L1; flyvis-gnn skips it while W_L1 is on
    _, parts = regularization_terms(m, v, 1.0, {**base, "W_L1": 2.0, "W_L2": 3.0})
    assert float(parts["W_L2"].detach()) == pytest.approx(3.0 * float((W * W).sum().sqrt()))
    _, parts = regularization_terms(m, v, 1.0, {**base, "W_L1": 2.0, "W_L2": 3.0}, W_L2_with_L1=False)
    assert "W_L2" not in parts
    _, parts = regularization_terms(m, v, 1.0, {**base, "g_phi_weight_L1": 0.5, "g_phi_weight_L2": 0.125})
    want_g = sum(
        0.5 * float(p.detach().abs().sum()) + 0.125 * float((p.detach() ** 2).sum().sqrt())
        for p in m.g_phi.parameters()
    )
    assert float(parts["g_phi_weight"].detach()) == pytest.approx(want_g)
    # f_theta's "L1" coefficient multiplies norm(2) in NeuralGraph, norm(1) in flyvis-gnn
    fl = {**base, "f_theta_weight_L1": 0.5, "f_theta_weight_L2": 0.25}
    l2 = sum(float((p.detach() ** 2).sum().sqrt()) for p in m.f_theta.parameters())
    l1 = sum(float(p.detach().abs().sum()) for p in m.f_theta.parameters())
    _, parts = regularization_terms(m, v, 1.0, fl)
    assert float(parts["f_theta_weight"].detach()) == pytest.approx(0.75 * l2)
    _, parts = regularization_terms(m, v, 1.0, fl, f_theta_L1_norm="l1")
    assert float(parts["f_theta_weight"].detach()) == pytest.approx(0.5 * l1 + 0.25 * l2)
    # g_phi monotone increasing in v -> zero diff penalty; decreasing -> positive
    with torch.no_grad():
        m.g_phi.layers[0].weight.zero_()
        m.g_phi.layers[0].weight[:, 0] = 1.0
        m.g_phi.layers[0].bias.fill_(0.1)
        m.g_phi.layers[1].weight.fill_(0.25)
        m.g_phi.layers[1].bias.zero_()
    vpos = torch.linspace(0.0, 1.0, 20, dtype=torch.float64)
    _, parts = regularization_terms(m, vpos, 1.0, {**base, "g_phi_diff": 1.0, "g_phi_norm": 1.0})
    assert float(parts["g_phi_diff"].detach()) == 0.0
    # g(v)^2 = (H * 0.25 * (v + 0.1))^2 with H = 4 -> (v + 0.1)^2 at v = 2 xnorm = 2: 4.41; target 2
    assert float(parts["g_phi_norm"].detach()) == pytest.approx(20**0.5 * (2.1**2 - 2.0))
    with torch.no_grad():
        m.g_phi.layers[0].weight[:, 0] = -1.0
        m.g_phi.layers[0].bias.fill_(2.0)
    g0 = (2.0 - vpos) ** 2
    _, parts = regularization_terms(m, vpos, 1.0, {**base, "g_phi_diff": 1.0})  # NeuralGraph: g(1.05 v)
    assert float(parts["g_phi_diff"].detach()) == pytest.approx(float(torch.relu(g0 - (2.0 - 1.05 * vpos) ** 2).norm()))
    _, parts = regularization_terms(m, vpos, 0.5, {**base, "g_phi_diff": 1.0}, diff_step="additive")  # flyvis-gnn
    g1 = (2.0 - vpos - 0.05 * 0.5) ** 2
    assert float(parts["g_phi_diff"].detach()) == pytest.approx(float(torch.relu(g0 - g1).norm()))
    # NeuralGraph's g_phi terms also train the embedding; flyvis-gnn detaches it
    tot, _ = regularization_terms(m, vpos, 1.0, {**base, "g_phi_diff": 1.0, "g_phi_norm": 1.0})
    tot.backward()
    with torch.no_grad():
        m.g_phi.layers[0].weight[:, 1:] = 0.3  # let the embedding enter g_phi
    m.zero_grad()
    regularization_terms(m, vpos, 1.0, {**base, "g_phi_diff": 1.0, "g_phi_norm": 1.0})[0].backward()
    assert torch.count_nonzero(m.a.grad) > 0
    m.zero_grad()
    regularization_terms(m, vpos, 1.0, {**base, "g_phi_diff": 1.0, "g_phi_norm": 1.0}, detach_embedding=True)[
        0
    ].backward()
    assert m.a.grad is None or torch.count_nonzero(m.a.grad) == 0


def test_variant_b_regularisers_pair_each_neuron_with_a_permuted_source():
    """Variant B (NeuralGraph's PDE_N9_B): inputs [v_n, v_n, a_n, a_perm(n)], only v_j perturbed; the
    scale pin sets input column 0 (v_i) to 2 xnorm."""
    g, _ = make_toy_ground_truth(n_neurons=12, n_types=2, mean_in_degree=3, seed=1)
    m = FlyVisGNN(g, variant="B", hidden_dim=6, n_layers=3, w_init="randn", seed=2, dtype=torch.float64)
    with torch.no_grad():
        m.a.copy_(torch.randn(12, 2, dtype=torch.float64))
    v = torch.randn(12, dtype=torch.float64)
    base = {**NO_REGULARISER, "g_phi_diff": 7.0, "g_phi_norm": 0.5}
    _, parts = regularization_terms(m, v, 0.8, base, generator=torch.Generator().manual_seed(5))
    perm = torch.randperm(12, generator=torch.Generator().manual_seed(5))
    a, ap = m.a.detach(), m.a.detach()[perm]

    def g2(cols):
        return m.g_phi(torch.stack(cols, 1)).squeeze(-1).detach() ** 2

    vv = v[:, None]
    x0 = [v, v, a[:, 0], a[:, 1], ap[:, 0], ap[:, 1]]
    x1 = [v, 1.05 * v, a[:, 0], a[:, 1], ap[:, 0], ap[:, 1]]
    xn = [torch.full_like(v, 1.6), v, a[:, 0], a[:, 1], ap[:, 0], ap[:, 1]]
    assert vv.shape == (12, 1)
    want_diff = 7.0 * float(torch.relu(g2(x0) - g2(x1)).norm())
    want_norm = 0.5 * float((g2(xn) - 1.6).norm())
    assert float(parts["g_phi_diff"].detach()) == pytest.approx(want_diff, rel=1e-12)
    assert float(parts["g_phi_norm"].detach()) == pytest.approx(want_norm, rel=1e-12)


def test_annealing_neuralgraph_per_term_rates():
    """The seeds' code (NeuralGraph): coeff * (1 - exp(-rate * epoch)) per term, no rate > 0 guard;
    seed 004's locked rates: W_L1 0.5, phi (f_theta) L1 0.4, edge (g_phi) L1 NeuralGraph's default 0.5."""
    cfg = FlyVisTrainConfig()
    assert (cfg.annealing, cfg.coeff_W_L1_rate, cfg.coeff_f_theta_weight_L1_rate, cfg.coeff_g_phi_weight_L1_rate) == (
        "neuralgraph",
        0.5,
        0.4,
        0.5,
    )
    c0, c1, c3 = (annealed_coefficients(cfg, e) for e in (0, 1, 3))
    for k in ("W_L1", "g_phi_weight_L1", "f_theta_weight_L1"):
        assert c0[k] == 0.0  # every L1 penalty is off throughout epoch 0
    assert c1["W_L1"] == pytest.approx(3.5e-5 * (1 - np.exp(-0.5)))
    assert c1["f_theta_weight_L1"] == pytest.approx(0.5 * (1 - np.exp(-0.4)))
    assert c3["g_phi_weight_L1"] == pytest.approx(0.29 * (1 - np.exp(-1.5)))
    for k, v in (("W_L2", 0.0), ("f_theta_weight_L2", 0.001), ("g_phi_diff", 750.0), ("g_phi_norm", 0.9)):
        assert c0[k] == c3[k] == v  # never annealed
    off = FlyVisTrainConfig(coeff_W_L1_rate=0.0)
    assert annealed_coefficients(off, 5)["W_L1"] == 0.0  # rate 0: off for good, as in NeuralGraph


def test_annealing_flyvis_gnn_shared_rate():
    fg = FlyVisTrainConfig(annealing="flyvis_gnn", coeff_W_L1=1.0, coeff_W_L2=2.0)
    assert annealed_coefficients(fg, 0)["W_L1"] == 1.0 and annealed_coefficients(fg, 0)["W_L2"] == 2.0  # rate 0: full
    fg5 = FlyVisTrainConfig(annealing="flyvis_gnn", coeff_W_L1=1.0, coeff_W_L2=2.0, regul_annealing_rate=0.5)
    c0, c1 = annealed_coefficients(fg5, 0), annealed_coefficients(fg5, 1)
    assert all(
        c0[k] == 0.0
        for k in ("W_L1", "W_L2", "g_phi_weight_L1", "g_phi_weight_L2", "f_theta_weight_L1", "f_theta_weight_L2")
    )
    assert c1["W_L2"] == pytest.approx(2.0 * (1 - np.exp(-0.5)))
    assert c0["g_phi_diff"] == fg5.coeff_g_phi_diff  # never annealed
    with pytest.raises(ValueError, match="config key 'regul_annealing_rate'.*annealing: flyvis_gnn"):
        FlyVisTrainConfig(regul_annealing_rate=0.5)
    with pytest.raises(ValueError, match="config key 'g_phi_diff_step'"):
        FlyVisTrainConfig(g_phi_diff_step="cubic")


SMALL = dict(
    epoch_loop="flyvis_gnn",  # n_epochs epochs (the resume tests count them)
    hidden_dim=16,
    hidden_dim_update=16,
    batch_size=4,
    iterations_per_epoch=20,
    quiet=True,
    log_every=5,
    coeff_g_phi_weight_L1=0.0,
    coeff_f_theta_weight_L1=0.0,
    coeff_f_theta_weight_L2=0.0,
    coeff_W_L1=0.0,
    coeff_g_phi_diff=10.0,
    coeff_g_phi_norm=1.0,
    dtype="float64",
)


@pytest.fixture(scope="module")
def tiny():
    return make_toy_dataset(n_neurons=40, n_types=3, n_frames=300, n_test_frames=60, seed=1)


def test_resume_reproduces_uninterrupted_run(tiny, tmp_path):
    _, _, data = tiny
    cfg = FlyVisTrainConfig(
        **SMALL,
        n_epochs=2,
        checkpoint_every=10,
        recurrent_training=True,
        time_step=2,
        noise_recurrent_level=0.01,
        recurrent_training_start_epoch=1,
        eval_each_epoch=False,
    )
    full, _ = train_flyvis_gnn(cfg, data, out_dir=tmp_path / "full")
    # interrupted: run 1 epoch + 10 iterations, then resume
    part = FlyVisTrainConfig(**{**cfg.to_dict(), "n_epochs": 1, "extra": {}})
    train_flyvis_gnn(part, data, out_dir=tmp_path / "part")
    ck = torch.load(tmp_path / "part" / "checkpoint.pt", weights_only=False)
    assert ck["epoch"] == 1 and ck["iteration"] == 0
    resumed, info = train_flyvis_gnn(cfg, data, out_dir=tmp_path / "part")
    assert info["iterations_run"] == 20
    for (n, p), q in zip(full.named_parameters(), resumed.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=0, msg=n)
    lines = [json.loads(l) for l in (tmp_path / "full" / "history.jsonl").read_text().splitlines()]
    assert len(lines) == 8 and lines[-1]["recurrent"] and not lines[0]["recurrent"]
    assert {"loss", "loss_data", "regul_g_phi_norm", "s_per_iter"} <= set(lines[0])
    # a resume with other training settings is refused, not silently mixed
    with pytest.raises(ValueError, match="different config.*lr"):
        train_flyvis_gnn(
            FlyVisTrainConfig(**{**cfg.to_dict(), "lr": 5e-3, "extra": {}}), data, out_dir=tmp_path / "part"
        )


def test_grad_clip_W_limits_the_W_step(tiny):
    _, _, data = tiny
    one = {**SMALL, "iterations_per_epoch": 1}
    clipped, _ = train_flyvis_gnn(FlyVisTrainConfig(**one, grad_clip_W=1e-12, lr_W=1.0), data)
    free, _ = train_flyvis_gnn(FlyVisTrainConfig(**one, grad_clip_W=0.0, lr_W=1.0), data)
    start, _ = train_flyvis_gnn(FlyVisTrainConfig(**one, lr_W=1e-30), data)
    # Adam's first step is lr * g / (|g| + 1e-8): ~lr per entry unclipped, ~lr * 1e-4 once the
    # W gradient is clipped to norm 1e-12 (far below Adam's eps)
    assert (free.W - start.W).abs().max() > 0.5
    assert (clipped.W - start.W).abs().max() < 1e-2


TOY_CFG = dict(
    hidden_dim=32,
    hidden_dim_update=32,
    batch_size=8,
    iterations_per_epoch=1500,
    n_epochs=1,
    lr=3e-3,
    lr_W=3e-3,
    lr_embedding=3e-3,
    coeff_g_phi_weight_L1=0.0,
    coeff_f_theta_weight_L1=0.0,
    coeff_f_theta_weight_L2=0.0,
    coeff_W_L1=0.0,
    coeff_g_phi_diff=10.0,
    coeff_g_phi_norm=1.0,
    quiet=True,
    log_every=100,
    eval_each_epoch=False,
)


def test_end_to_end_recovery_improves_every_metric(tmp_path):
    """Tiny run on a 200-neuron, 5-type toy ground truth through the CLI helpers: every recovery
    metric improves over the untrained model (thresholds well below what the run reaches).
    Process noise 0.5 per frame (the reference's strongest lever: it spreads each neuron's voltage
    so f_theta's line, hence tau and V_rest, is identified)."""
    torch.set_num_threads(min(2, torch.get_num_threads()))
    graph, params, data = make_toy_dataset(
        n_neurons=200, n_types=5, n_frames=2000, n_test_frames=400, seed=0, noise_model_level=0.5
    )
    np.savez(tmp_path / "data.npz", **data)
    import yaml

    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump({**TOY_CFG, "data_path": "data.npz"}))
    untrained, _ = train_flyvis_gnn(
        FlyVisTrainConfig(**{**TOY_CFG, "iterations_per_epoch": 1, "lr": 1e-12, "lr_W": 1e-12, "lr_embedding": 1e-12}),
        data,
    )
    before = M.evaluate(untrained, data)
    res = flyvis_train_main(tmp_path / "cfg.yaml", tmp_path / "run")
    print(
        "before", {k: before[k] for k in ("connectivity_R2", "tau_R2", "V_rest_R2", "cluster_accuracy", "test_pearson")}
    )
    print("after ", {k: res[k] for k in ("connectivity_R2", "tau_R2", "V_rest_R2", "cluster_accuracy", "test_pearson")})
    for key in (
        "connectivity_R2",
        "V_rest_R2",
        "cluster_accuracy",
        "test_pearson",
        "W_sum_corr_in",
        "W_sum_corr_out",
        "sign_match",
    ):
        assert res[key] > np.nan_to_num(before[key], nan=0.0) + 0.05, key
    assert (
        res["connectivity_R2"] > 0.8 and res["tau_R2"] > 0.5 and res["test_pearson"] > 0.8 and res["sign_match"] > 0.8
    )
    assert res["tau_R2"] > np.nan_to_num(before["tau_R2"], nan=0.0) + 0.05
    for f in (
        "result.json",
        "config.json",
        "checkpoint.pt",
        "history.jsonl",
        "metrics.jsonl",
        "recovery_W.png",
        "recovery_tau.png",
        "recovery_V_rest.png",
        "embedding.png",
    ):
        assert (tmp_path / "run" / f).exists(), f
    again = flyvis_evaluate_main(tmp_path / "run", analysis=True)
    assert again["connectivity_R2"] == pytest.approx(res["connectivity_R2"])
    an = json.loads((tmp_path / "run" / "analysis.json").read_text())
    assert an["recovery_mechanism"] == "DIRECT" and an["sign_flips"]["pos_to_neg"] < 0.2
    assert an["absW_sum_corr_in"] > 0.5 and len(an["per_type"]["types"]) == len(set(data["cell_type_index"].tolist()))
    assert 1 <= an["activity_svd_rank_reference"]["rank_99"] <= 100
    with pytest.raises(ValueError, match="is not a run folder"):
        flyvis_evaluate_main(tmp_path)
    assert json.loads((tmp_path / "run" / "result.json").read_text())["s_per_iteration"] > 0


def test_variant_b_trains_and_missing_data_path_is_named(tiny, tmp_path):
    _, _, data = tiny
    m, info = train_flyvis_gnn(FlyVisTrainConfig(**{**SMALL, "iterations_per_epoch": 5}, variant="B"), data)
    assert m.variant == "B" and np.isfinite(info["last"]["loss"])
    (tmp_path / "c.yaml").write_text("n_epochs: 1\n")
    with pytest.raises(ValueError, match="config key 'data_path'"):
        flyvis_train_main(tmp_path / "c.yaml", tmp_path / "run")


def test_a_run_started_before_the_defaults_changed_still_resumes(tiny, tmp_path):
    """A checkpoint whose config lacks the new fields (annealing, regulariser forms) and holds the old
    defaults (W_L2_with_L1 false, no per-term rates) resumes under a config that sets none of them: the
    run keeps its own values (the missing keys their old meaning) and says so; an explicit change refuses."""
    _, _, data = tiny
    small = {k: v for k, v in SMALL.items() if k != "quiet"}
    cfg = FlyVisTrainConfig(
        **small,
        quiet=True,
        eval_each_epoch=False,
        annealing="flyvis_gnn",
        W_L2_with_L1=False,
        coeff_W_L1_rate=None,
        coeff_f_theta_weight_L1_rate=None,
        coeff_g_phi_weight_L1_rate=None,
        f_theta_weight_L1_norm="l1",
        g_phi_diff_step="additive",
        g_phi_reg_frame="first",
        g_phi_reg_detach=True,
        n_epochs=1,
    )
    train_flyvis_gnn(cfg, data, out_dir=tmp_path / "old")
    ck_path = tmp_path / "old" / "checkpoint.pt"
    ck = torch.load(ck_path, weights_only=False)
    for k in ("annealing", "f_theta_weight_L1_norm", "g_phi_diff_step", "g_phi_reg_frame", "g_phi_reg_detach"):
        del ck["config"][k]  # as written by the code before these fields existed
    torch.save(ck, ck_path)
    user = FlyVisTrainConfig.from_dict({**small, "quiet": False, "eval_each_epoch": False, "n_epochs": 2})
    assert user.annealing == "neuralgraph" and user.W_L2_with_L1  # today's defaults
    _, info = train_flyvis_gnn(user, data, out_dir=tmp_path / "old")
    assert info["iterations_run"] == 20  # the second epoch only: resumed, not restarted
    assert user.annealing == "flyvis_gnn" and user.W_L2_with_L1 is False and user.g_phi_reg_detach is True
    assert user.coeff_W_L1_rate is None
    with pytest.raises(ValueError, match="different config.*g_phi_diff_step: 'additive' -> 'multiplicative'"):
        train_flyvis_gnn(
            FlyVisTrainConfig.from_dict({**small, "n_epochs": 3, "g_phi_diff_step": "multiplicative"}),
            data,
            out_dir=tmp_path / "old",
        )


def test_default_epoch_loop_is_neuralgraphs_with_the_l1_terms_on_in_the_second_epoch(tiny, tmp_path):
    """The seeds' trainer loops range(n_epochs + 1): n_epochs 1 trains epochs 0 and 1; the annealed L1
    terms are 0 in epoch 0 (absent from the log) and on in epoch 1."""
    _, _, data = tiny
    small = {k: v for k, v in SMALL.items() if k not in ("epoch_loop", "coeff_W_L1", "coeff_f_theta_weight_L1")}
    cfg = FlyVisTrainConfig(**small, eval_each_epoch=False)
    assert cfg.epoch_loop == "neuralgraph" and cfg.n_epochs == 1 and cfg.w_init == "zeros"
    _, info = train_flyvis_gnn(cfg, data, out_dir=tmp_path / "r")
    assert info["iterations_run"] == 2 * cfg.iterations_per_epoch
    lines = [json.loads(l) for l in (tmp_path / "r" / "history.jsonl").read_text().splitlines()]
    e0 = [l for l in lines if l["epoch"] == 0]
    e1 = [l for l in lines if l["epoch"] == 1]
    assert e0 and e1 and all("regul_W_L1" not in l for l in e0) and all(l["regul_W_L1"] > 0 for l in e1)
    assert all("regul_f_theta_weight" in l for l in e1)


def test_the_shipped_example_config_lists_the_defaults():
    """experiments/flyvis_recovery/gnn.yaml spells out every default: it trains exactly as a config
    holding only data_path (kept in sync with FlyVisTrainConfig)."""
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "experiments" / "flyvis_recovery" / "gnn.yaml"
    cfg = FlyVisTrainConfig.from_yaml(path)
    assert cfg == FlyVisTrainConfig(data_path=cfg.data_path)
    import dataclasses

    import yaml

    raw = yaml.safe_load(path.read_text())
    keys = set(raw) | {k for v in raw.values() if isinstance(v, dict) for k in v}
    fields = {f.name for f in dataclasses.fields(FlyVisTrainConfig)} - {"extra", "quiet", "backend", "w_init_scale"}
    assert fields <= keys, sorted(fields - keys)
