"""Recovery metrics on constructed cases."""

import numpy as np
import pytest
import torch

from eirnn_fast.flyvis import metrics as M
from eirnn_fast.flyvis.gnn import FlyVisGNN
from eirnn_fast.flyvis.gnn_toy import make_toy_dataset


def test_r2_is_squared_pearson_and_affine_invariant():
    rng = np.random.default_rng(0)
    t = rng.standard_normal(500)
    assert M.r2_score(t, t) == pytest.approx(1.0)
    assert M.r2_score(3 * t - 2, t) == pytest.approx(1.0)
    assert abs(M.r2_score(rng.permutation(t), t)) < 0.02
    assert np.isnan(M.r2_score(np.ones(5), t[:5]))


def test_connectivity_R2_perfect_shuffled_and_outliers():
    rng = np.random.default_rng(1)
    W = rng.standard_normal(5000)
    assert M.connectivity_R2(W, W) == pytest.approx(1.0)
    assert M.connectivity_R2(rng.permutation(W), W) < 0.01
    W_bad = W.copy()
    W_bad[:10] = 100.0  # outliers beyond 5 are dropped
    assert M.connectivity_R2(W_bad, W) == pytest.approx(1.0)
    assert M.connectivity_R2(W_bad, W, outlier_threshold=None) < 0.5
    with pytest.raises(ValueError, match="same number of edges"):
        M.connectivity_R2(W[:5], W)


def test_corrected_W_undoes_scale_degeneracy():
    """W scaled by c with g_phi slope 1/c and f_theta slopes -1/tau: W* = W_true."""
    src, dst = np.array([0, 1, 2]), np.array([1, 2, 0])
    W_true = np.array([0.5, -1.0, 2.0])
    tau = np.array([0.1, 0.2, 0.4])
    c = 3.0
    lin = {"slope_f": -1 / tau, "grad_msg": 1 / tau, "slope_g": np.full(3, 1 / c)}
    np.testing.assert_allclose(M.corrected_W(W_true * c, src, dst, lin), W_true)


def test_cluster_accuracy_permutation_invariant():
    rng = np.random.default_rng(2)
    true = rng.integers(0, 5, 300)
    perm = np.array([3, 0, 4, 1, 2])
    assert M.cluster_accuracy(perm[true], true) == 1.0
    assert M.cluster_accuracy(perm[true] + 10, true) == 1.0
    noisy = perm[true].copy()
    noisy[:30] = (noisy[:30] + 1) % 5
    assert 0.85 <= M.cluster_accuracy(noisy, true) <= 0.95
    assert M.cluster_accuracy(np.zeros(300), true) == pytest.approx(np.bincount(true).max() / 300)


def test_kmeans_recovers_separated_blobs():
    rng = np.random.default_rng(3)
    true = np.repeat(np.arange(4), 50)
    X = np.eye(4)[true] * 10 + rng.standard_normal((200, 4)) * 0.3
    assert M.cluster_accuracy(M.kmeans(X, 4, seed=0), true) == 1.0


def test_tau_vrest_from_exact_linear_f():
    """A model whose f_theta is exactly (-v + V_rest)/tau gives tau, V_rest back (R2 = 1)."""
    _, params, data = make_toy_dataset(n_neurons=40, n_types=4, n_frames=300, n_test_frames=50, seed=4)
    lin = {"slope_f": -1 / params["tau"], "offset_f": params["V_rest"] / params["tau"]}
    tau, vr = M.learned_tau_vrest(lin)
    np.testing.assert_allclose(tau, params["tau"])
    np.testing.assert_allclose(vr, params["V_rest"])
    assert M.tau_R2(tau, params["tau"]) == pytest.approx(1.0)
    assert M.V_rest_R2(vr, params["V_rest"]) == pytest.approx(1.0)


def test_linearize_model_on_a_handmade_linear_model():
    """Set f_theta to the exact linear update and g_phi^2 to a linear ramp: slopes come out exactly."""
    graph, params, data = make_toy_dataset(n_neurons=30, n_types=3, n_frames=400, n_test_frames=50, seed=5)
    m = FlyVisGNN(graph, hidden_dim=2, n_layers=2, embedding_dim=1, dtype=torch.float64)
    with torch.no_grad():
        # f([v, a, msg, I]) = -2 v + 0.5 a + 3 msg + I  (a = 1): tau = 0.5, V_rest = 0.25
        m.f_theta.layers[0].weight.copy_(
            torch.tensor([[1.0, 0, 0, 0], [0, 0.5, 3.0, 1.0]], dtype=torch.float64) * 0
            + torch.tensor([[-2.0, 0.5, 3.0, 1.0], [0, 0, 0, 0]], dtype=torch.float64)
        )
        m.f_theta.layers[0].bias.zero_()
        m.f_theta.act = torch.nn.Identity()
        m.f_theta.layers[1].weight.copy_(torch.tensor([[1.0, 0.0]], dtype=torch.float64))
        m.f_theta.layers[1].bias.zero_()
    lin = M.linearize_model(m, data["x"], data["I"], n_points=50)
    np.testing.assert_allclose(lin["slope_f"], -2.0, rtol=1e-10)
    np.testing.assert_allclose(lin["offset_f"], 0.5, rtol=1e-10)
    np.testing.assert_allclose(lin["grad_msg"], 3.0, rtol=1e-10)
    tau, vr = M.learned_tau_vrest(lin)
    np.testing.assert_allclose(tau, 0.5)
    np.testing.assert_allclose(vr, 0.25)


def test_test_pearson_and_analysis():
    rng = np.random.default_rng(6)
    x = rng.standard_normal((100, 20))
    r = M.pearson_per_neuron(x, 2 * x + 1)
    np.testing.assert_allclose(r, 1.0)
    x[:, 0] = 1.0
    assert np.isnan(M.pearson_per_neuron(x, x)[0])
    W = rng.standard_normal(200)
    src, dst = rng.integers(0, 20, 200), rng.integers(0, 20, 200)
    c = M.per_neuron_W_sum_correlation(W, W, src, dst, 20)
    assert c["in"] == pytest.approx(1.0) and c["out"] == pytest.approx(1.0)
    assert M.sign_match(W, W) == 1.0 and M.sign_match(-W, W) == 0.0
    low = rng.standard_normal((500, 3)) @ rng.standard_normal((3, 30))
    assert M.activity_svd_rank(low) == 3
    long = rng.standard_normal((12_000, 4)) @ rng.standard_normal((4, 30)) + 1e-3 * rng.standard_normal((12_000, 30))
    assert M.activity_svd_rank(long, max_frames=None) == M.activity_svd_rank(long, max_frames=500) == 4
    wide = rng.standard_normal((40, 3)) @ rng.standard_normal((3, 90))  # fewer frames than neurons: X X^T
    assert M.activity_svd_rank(wide) == 3
    s = np.linalg.svd(long - long.mean(0), compute_uv=False)
    want = int(np.searchsorted(np.cumsum(s**2) / (s**2).sum(), 0.9999) + 1)
    assert M.activity_svd_rank(long, variance=0.9999) == want  # same as a plain SVD
    mu, sd = M.activity_stats(torch.as_tensor(long, dtype=torch.float32))  # chunked two-pass stats
    np.testing.assert_allclose(mu, long.mean(0), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(sd, long.std(0), rtol=1e-5, atol=1e-5)
    assert M.cv_across_seeds([1.0, 1.0, 1.0]) == 0.0
    assert M.cv_across_seeds([0.9, 1.1]) == pytest.approx(10.0)


def test_test_pearson_of_a_perfect_rollout():
    """A model with the true dynamics hard-wired (f = true update, g^2 = ReLU) rolls out the
    noise-free test trace exactly: test_pearson = 1."""
    graph, params, data = make_toy_dataset(n_neurons=30, n_types=3, n_frames=200, n_test_frames=60, seed=7)

    class Truth(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))
            self.src = torch.as_tensor(graph.src)
            self.dst = torch.as_tensor(graph.dst)

        def forward(self, v, I):
            msg = torch.zeros_like(v).index_add(0, self.dst, torch.as_tensor(params["W"]) * torch.relu(v[self.src]))
            return (-v + torch.as_tensor(params["V_rest"]) + msg + I) / torch.as_tensor(params["tau"])

        rollout = FlyVisGNN.rollout

    m = Truth().double()
    assert M.test_pearson(m, data["x_test"], data["I_test"], 0.02) == pytest.approx(1.0, abs=1e-6)


def test_kmeans_survives_non_finite_features():
    """A diverged model gives NaN/inf clustering features: k-means must still return N labels."""
    from eirnn_fast.flyvis.metrics import cluster_accuracy, kmeans

    X = np.random.default_rng(0).normal(size=(40, 3))
    X[3, 1] = np.nan
    X[7, 0] = np.inf
    labels = kmeans(X, 4, seed=0)
    assert labels.shape == (40,)
    assert 0.0 <= cluster_accuracy(labels, np.arange(40) % 4) <= 1.0


def test_true_rollout_is_the_simulator_without_noise():
    """The test target: the ground-truth ODE rolled out noise-free from a given state equals the
    simulator (noise 0, same start, same stimulus), with the raw tau and with flyvis's clamp."""
    from eirnn_fast.flyvis import load_connectome, simulate
    from eirnn_fast.flyvis.parameters import load_pretrained

    c = load_connectome(1)
    p = load_pretrained(c)
    rng = np.random.default_rng(3)
    I = np.zeros((60, c.n_neurons))
    I[:, c.input_indices.numpy()] = rng.uniform(0, 1, (60, c.n_inputs))
    v0 = rng.normal(0.5, 0.5, c.n_neurons)
    for clamp in ("none", "dt"):
        sim = simulate(
            c,
            p,
            torch.as_tensor(I),
            noise_model_level=0.0,
            initial_state=torch.as_tensor(v0),
            dtype=torch.float64,
            backend="reference",
            tau_clamp=clamp,
        )
        roll = M.true_rollout(c.src.numpy(), c.dst.numpy(), p.W, p.tau, p.V_rest, v0, I, 0.02, tau_clamp=clamp)
        np.testing.assert_allclose(roll, sim.x.numpy(), rtol=1e-9, atol=1e-9)
    a = M.true_rollout(c.src.numpy(), c.dst.numpy(), p.W, p.tau, p.V_rest, v0, I, 0.02)
    b = M.true_rollout(c.src.numpy(), c.dst.numpy(), p.W, p.tau, p.V_rest, v0, I, 0.02, tau_clamp="dt")
    assert np.abs(a - b).max() > 1e-3  # 51 of 65 types have tau < dt: the clamp matters


def test_test_pearson_scores_against_the_noise_free_truth_not_the_noisy_record():
    """The ground-truth model itself, rolled out from the first test frame: against the noise-free truth
    it scores 1; against a record with process noise 0.5 it scores far less (the old metric's cap)."""
    from eirnn_fast.flyvis import load_connectome, simulate
    from eirnn_fast.flyvis.parameters import load_pretrained

    c = load_connectome(1)
    p = load_pretrained(c)
    rng = np.random.default_rng(4)
    I = np.zeros((300, c.n_neurons))
    I[:, c.input_indices.numpy()] = np.repeat(rng.uniform(0, 1, (30, c.n_inputs)), 10, axis=0)
    noisy = simulate(c, p, torch.as_tensor(I), noise_model_level=0.5, seed=1, dtype=torch.float64).x.numpy()

    class Truth(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))

        def forward(self, v, I_t):
            msg = torch.zeros_like(v).index_add(0, c.dst, p.W.double() * torch.relu(v[c.src]))
            return (-v + p.V_rest.double() + msg + I_t) / p.tau.double()

        rollout = FlyVisGNN.rollout

    truth = M.true_rollout(c.src.numpy(), c.dst.numpy(), p.W, p.tau, p.V_rest, noisy[0], I, 0.02)
    assert M.test_pearson(Truth(), noisy, I, 0.02, truth=truth) == pytest.approx(1.0, abs=1e-9)
    assert M.test_pearson(Truth(), noisy, I, 0.02) < 0.6


def test_sign_flips_and_mechanism_by_hand():
    W = np.array([1.0, 2.0, -1.0, -3.0, 0.0, 0.5])
    L = np.array([-1.0, 2.0, 1.0, 1.0, 5.0, 0.0])  # +->- once of 3 positives; -->+ twice of 2 negatives
    f = M.sign_flips(L, W)
    assert f["pos_to_neg"] == pytest.approx(1 / 3) and f["neg_to_pos"] == 1.0 and (f["n_pos"], f["n_neg"]) == (3, 2)
    # seed 003's four models
    assert M.recovery_mechanism(0.68, 0.94) == "DIRECT"
    assert M.recovery_mechanism(-0.19, 0.31) == "PARTIAL"
    assert M.recovery_mechanism(-0.46, -0.84) == "COMPENSATION"
    assert M.recovery_mechanism(float("nan"), 0.5) == "UNDEFINED"
    rng = np.random.default_rng(0)
    Wt = rng.standard_normal(400)
    src, dst = rng.integers(0, 40, 400), rng.integers(0, 40, 400)
    for Wl, want in ((2 * Wt, "DIRECT"), (-Wt, "COMPENSATION"), (rng.standard_normal(400), "PARTIAL")):
        c = M.per_neuron_W_sum_correlation(Wl, Wt, src, dst, 40)
        assert M.recovery_mechanism(c["in"], c["out"]) == want
    # non-finite W* count as 0 in the sums (no overflow to NaN)
    Wl = Wt.copy()
    Wl[0] = np.inf
    c = M.per_neuron_W_sum_correlation(Wl, Wt, src, dst, 40)
    assert np.isfinite(c["in"]) and np.isfinite(c["out"])


def test_per_type_recovery_by_hand():
    ti = np.array([0, 0, 1, 1, 1])
    dst = np.array([0, 1, 2, 3, 4, 4])
    Wt = np.array([1.0, 2.0, 1.0, 2.0, 3.0, 4.0])
    Ws = np.array([2.0, 4.0, 1.0, 2.0, 3.0, 0.0])  # type 0 exact up to scale; type 1 one wrong edge
    tau_t = np.array([0.02, 0.02, 0.1, 0.1, 0.1])
    tau_l = np.array([0.01, 0.03, 0.1, 0.2, 0.0])
    r = M.per_type_recovery(
        Ws, Wt, dst, tau_l, tau_t, tau_l * 0 + 0.5, np.array([0.1, 0.1, 0.5, 0.5, 0.5]), ti, ["A", "B"]
    )
    a, b = r["types"]["A"], r["types"]["B"]
    assert a["connectivity_R2"] == pytest.approx(1.0)  # affine invariant
    assert a["connectivity_R2_det"] == pytest.approx(1 - ((Ws[:2] - Wt[:2]) ** 2).sum() / 0.5)
    t, p = Wt[2:], Ws[2:]
    assert b["connectivity_R2_det"] == pytest.approx(1 - ((p - t) ** 2).sum() / ((t - t.mean()) ** 2).sum())
    assert a["tau_learned"] == pytest.approx(0.02) and a["tau_rmse"] == pytest.approx(0.01)
    assert b["tau_rmse"] == pytest.approx(np.sqrt((0.0 + 0.01 + 0.01) / 3))
    assert (a["n_neurons"], b["n_edges_in"]) == (2, 4)
    assert np.isnan(r["tau_R2_by_type"]) or 0 <= r["tau_R2_by_type"] <= 1
    # lever on tau_R2: share of the true tau's sum of squares; mean 0.068, SS = 2 * 0.048^2 + 3 * 0.032^2
    ss = 2 * 0.048**2 + 3 * 0.032**2
    assert a["tau_var_share"] == pytest.approx(2 * 0.048**2 / ss) and b["tau_var_share"] == pytest.approx(
        3 * 0.032**2 / ss
    )
    # leaving one type out leaves the other alone, whose true tau is constant: R^2 undefined (NaN)
    assert np.isnan(a["tau_R2_without"]) and np.isnan(b["tau_R2_without"]) and r["tau_worst_type"] is None


def test_tau_worst_type_names_the_type_whose_removal_raises_tau_R2_most():
    rng = np.random.default_rng(5)
    ti = np.repeat(np.arange(6), 7)
    tau_t = np.repeat([0.02, 0.03, 0.05, 0.08, 0.12, 0.3], 7)
    tau_l = tau_t * (1 + 0.05 * rng.standard_normal(tau_t.size))
    tau_l[ti == 5] = 0.1  # the slow type learned 3x too fast
    z = np.zeros(42)
    r = M.per_type_recovery(z[:1], z[:1], [0], tau_l, tau_t, z, z, ti, list("abcdef"))
    assert r["tau_worst_type"] == "f"
    keep = ti != 5
    assert r["types"]["f"]["tau_R2_without"] == pytest.approx(M.r2_score(tau_l[keep], tau_t[keep]))
    assert r["types"]["f"]["tau_R2_without"] > 0.95 > M.r2_score(tau_l, tau_t)
    d = tau_t - tau_t.mean()
    assert r["types"]["f"]["tau_var_share"] == pytest.approx((d[ti == 5] ** 2).sum() / (d**2).sum())


def test_activity_svd_rank_reference_matches_a_plain_svd():
    """flyvis-gnn's definition: raw (uncentred) voltages, energy within the top k <= 100."""
    rng = np.random.default_rng(2)
    low = rng.standard_normal((3000, 3)) @ rng.standard_normal((3, 200)) + 5.0  # the offset is a 4th direction
    r = M.activity_svd_rank_reference(low)
    s = np.linalg.svd(low, compute_uv=False)[:100]
    cum = np.cumsum(s**2) / (s**2).sum()
    assert (r["rank_90"], r["rank_99"]) == (int(np.searchsorted(cum, 0.9) + 1), int(np.searchsorted(cum, 0.99) + 1))
    assert r["k"] == 100 and M.activity_svd_rank(low) == 3  # the centred 99 % rank ignores the offset
    # the randomised path (more than 1e6 values) and neuron subsampling (> 1024 neurons) agree with exact
    big = rng.standard_normal((1200, 6)) @ rng.standard_normal((6, 2100))
    rb = M.activity_svd_rank_reference(big)
    sub = big[:, ::3]
    s = np.linalg.svd(sub, compute_uv=False)[:100]
    cum = np.cumsum(s**2) / (s**2).sum()
    assert rb["rank_99"] == int(np.searchsorted(cum, 0.99) + 1) <= 6


def test_evaluate_a_diverged_model_without_runtime_warnings():
    """Huge learned weights (a diverged run) give NaN or finite metrics with notes, never warnings."""
    import warnings

    graph, params, data = make_toy_dataset(n_neurons=30, n_types=3, n_frames=200, n_test_frames=60, seed=7)
    m = FlyVisGNN(graph, hidden_dim=8, n_layers=2, w_init="randn", seed=0)
    with torch.no_grad():
        m.W.mul_(1e30)
        for p in m.f_theta.parameters():
            p.zero_()  # slope_f = 0 everywhere: W* = +-inf, tau constant
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = M.evaluate(m, data)
    assert np.isnan(res["tau_R2"]) and any("tau_R2 is NaN" in n for n in res["notes"])
    assert any("non-finite" in n for n in res["notes"])
