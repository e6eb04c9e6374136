"""PSTH correlation, noise ceiling and rate statistics on constructed cases."""

import numpy as np
import pytest
import torch

from eirnn_fast.metrics import (
    noise_ceiling,
    per_neuron_correlation,
    psth_correlation,
    psth_correlation_report,
    rate_statistics,
    smooth_psth,
    trial_average,
)


def _psth_rates(psth, k=5):
    return np.repeat(psth[None], k, axis=0)  # [K, T, N], every trial = the PSTH


def test_identical_and_affine_psths_give_one():
    rng = np.random.default_rng(0)
    p = rng.random((30, 4))
    target = _psth_rates(p)
    assert psth_correlation(target, target) == pytest.approx(1.0)
    assert psth_correlation(3.0 * target + 7.0, target) == pytest.approx(1.0)  # scale-free
    assert psth_correlation(-target, target) == pytest.approx(-1.0)


def test_known_correlation_and_torch_input():
    t = np.linspace(0, 2 * np.pi, 200, endpoint=False)
    a = np.stack([np.sin(t), np.sin(t)], 1)
    b = np.stack([np.sin(t), np.cos(t)], 1)  # r = 1 and r = 0
    r = per_neuron_correlation(torch.tensor(_psth_rates(a)), torch.tensor(_psth_rates(b)))
    np.testing.assert_allclose(r, [1.0, 0.0], atol=1e-12)
    assert psth_correlation(_psth_rates(a), _psth_rates(b)) == pytest.approx(0.5)


def test_trial_average_and_unit_index():
    model = np.zeros((2, 3, 5))
    model[:, :, 4] = np.arange(3)  # unit 4 carries the signal
    target = np.zeros((2, 3, 1))
    target[:, :, 0] = np.arange(3)
    assert psth_correlation(model, target, unit_index=[4]) == pytest.approx(1.0)
    np.testing.assert_allclose(trial_average(model)[:, 4], [0, 1, 2])


def test_nan_policy_skips_flat_neurons():
    rng = np.random.default_rng(1)
    p = rng.random((20, 3))
    model = _psth_rates(p)
    model[:, :, 1] = 5.0  # flat model PSTH -> r = NaN, skipped
    rep = psth_correlation_report(model, _psth_rates(p))
    assert rep["per_neuron"][1] is None and rep["n_finite"] == 2
    assert rep["psth_corr"] == pytest.approx(1.0)
    flat = np.ones((2, 5, 2))
    assert np.isnan(psth_correlation(flat, flat))


def test_mask_excludes_invalid_trials():
    target = np.zeros((2, 4, 1))
    target[0, :, 0] = [0, 1, 2, 3]
    target[1, :, 0] = [3, 0, 0, 0]  # garbage, masked out
    mask = np.array([[1, 1, 1, 1], [0, 0, 0, 0]], dtype=float)
    np.testing.assert_allclose(trial_average(target, mask)[:, 0], [0, 1, 2, 3])
    model = target[:1].repeat(2, axis=0)
    assert psth_correlation(model, target, mask=mask) == pytest.approx(1.0)


def test_smoothing_boxcar():
    p = np.zeros((7, 1))
    p[3] = 3.0
    s = smooth_psth(p, smooth_ms=75.0, bin_ms=25.0)  # 3-bin boxcar
    np.testing.assert_allclose(s[:, 0], [0, 0, 1, 1, 1, 0, 0])
    np.testing.assert_allclose(smooth_psth(p, 8.0, 25.0), p)  # < 1 bin: no-op, like the predecessor


def test_noise_ceiling_noiseless_and_noisy():
    rng = np.random.default_rng(2)
    p = 10 + 5 * np.sin(np.linspace(0, 6, 50))[:, None] * np.ones((1, 3))
    exact = noise_ceiling(_psth_rates(p, 40))
    assert exact["split_half_r"] == pytest.approx(1.0) and exact["ceiling"] == pytest.approx(1.0)
    noisy = rng.poisson(np.repeat(p[None] * 0.025, 200, 0)) / 0.025
    nc = noise_ceiling(noisy, n_splits=10, seed=0)
    assert 0.0 < nc["split_half_r"] < nc["spearman_brown"] < nc["ceiling"] < 1.0
    assert nc == noise_ceiling(noisy, n_splits=10, seed=0)
    # the true mean's correlation with the noisy PSTH should be near the ceiling
    truth = psth_correlation(_psth_rates(p, 2), noisy)
    assert abs(truth - nc["ceiling"]) < 0.1


def test_rate_statistics_ratios():
    rng = np.random.default_rng(3)
    target = rng.random((4, 10, 2)) * 10
    stats = rate_statistics(2 * target, target)
    assert stats["mean_rate_ratio"] == pytest.approx(2.0)
    assert stats["psth_temporal_std_ratio"] == pytest.approx(2.0)
    assert stats["trial_temporal_std_ratio"] == pytest.approx(2.0)


def test_rate_error_by_hand():
    from eirnn_fast.metrics import per_neuron_mean_rates, rate_error

    # per-neuron means: model [1.5, 3.5, 10.0, 0.0], data [0.5, 3.5, 2.0, 0.0]
    model = _psth_rates(np.array([[1.0, 3.0, 10.0, 0.0], [2.0, 4.0, 10.0, 0.0]]), k=3)
    data = _psth_rates(np.array([[0.5, 3.5, 2.0, 0.0], [0.5, 3.5, 2.0, 0.0]]), k=3)
    np.testing.assert_allclose(per_neuron_mean_rates(model), [1.5, 3.5, 10.0, 0.0])
    e = rate_error(model, data)
    logs = [np.log(2.0 / 1.0), 0.0, np.log(10.5 / 2.5), 0.0]  # offset 0.5 sp/s on both sides
    np.testing.assert_allclose(e["per_neuron_log_ratio"], logs, rtol=1e-12)
    assert e["median_abs_log_ratio"] == pytest.approx(np.median(np.abs(logs)))  # (0 + log 2) / 2
    # log 2 exactly (neuron 0) is not "more than 2x"; log 4.2 is
    assert e["frac_off_2x"] == 0.25 and e["n_off_2x"] == 1 and e["worst_neuron"] == 2
    assert e["max_abs_log_ratio"] == pytest.approx(np.log(4.2))
    assert e["definition"]["offset_sp_s"] == 0.5


def test_rate_error_mask_and_unit_index():
    from eirnn_fast.metrics import per_neuron_mean_rates, rate_error

    data = np.full((2, 3, 1), 4.0)
    units = np.zeros((2, 3, 3))
    units[..., 2] = 4.0  # recorded neuron 0 is fitted by unit 2
    mask = np.ones((2, 3))
    mask[1, 2] = 0
    units[1, 2, 2] = 1000.0  # invalid bin: ignored
    e = rate_error(units, data, mask, unit_index=[2])
    assert e["median_abs_log_ratio"] == 0.0 and e["frac_off_2x"] == 0.0
    data[0, 0, 0] = 9.0  # valid bins: (9 + 4 * 4) / 5 = 5
    assert per_neuron_mean_rates(data, mask)[0] == pytest.approx(5.0)
    assert rate_error(units, data, mask, unit_index=[2])["median_abs_log_ratio"] == pytest.approx(np.log(5.5 / 4.5))
