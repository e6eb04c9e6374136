"""Constraint parameterisations of the E-I RNN (eirnn_fast.models.parametrize)."""

import numpy as np
import pytest
import torch

from eirnn_fast.models import parametrize as P


def test_masks():
    sign = P.dale_sign_mask(3, 2)
    assert sign.shape == (5, 5)
    assert (sign[:, :3] == 1).all() and (sign[:, 3:] == -1).all()
    diag = P.zero_diagonal_mask(4)
    assert torch.equal(diag, 1 - torch.eye(4))


def test_dale_weight_signs_and_bypass():
    raw = torch.randn(5, 5, generator=torch.Generator().manual_seed(0))
    sign, diag = P.dale_sign_mask(3, 2), P.zero_diagonal_mask(5)
    w = P.dale_weight(raw, sign, diag)
    assert (w[:, :3] >= 0).all() and (w[:, 3:] <= 0).all() and (w.diagonal() == 0).all()
    torch.testing.assert_close(w.abs(), raw.abs() * diag)
    wb = P.dale_weight(raw, sign, diag, bypass_dale=True)
    torch.testing.assert_close(wb, raw * diag)


def test_low_rank_weight():
    gen = torch.Generator().manual_seed(1)
    u, v = torch.randn(6, 2, generator=gen), torch.randn(6, 2, generator=gen)
    sign, diag = P.dale_sign_mask(4, 2), P.zero_diagonal_mask(6)
    torch.testing.assert_close(P.low_rank_weight(u, v, sign, diag), (u @ v.T).abs() * sign * diag)
    torch.testing.assert_close(P.low_rank_weight(u, v, sign, diag, True), (u @ v.T) * diag)


@pytest.mark.parametrize("alpha", [0.05, 0.3, 0.5, 0.75, 0.95])
def test_alpha_logit_round_trip(alpha):
    assert P.alpha_from_logit(torch.tensor(P.alpha_to_logit(alpha))).item() == pytest.approx(alpha, rel=1e-6)


def test_alpha_logit_clips():
    assert P.alpha_from_logit(torch.tensor(P.alpha_to_logit(1.5))).item() == pytest.approx(0.99)
    assert P.alpha_from_logit(torch.tensor(P.alpha_to_logit(0.0))).item() == pytest.approx(0.01)


@pytest.mark.parametrize("tau", [30.0, 35.0, 50.0, 100.0, 200.0, 500.0])
def test_tau_raw_round_trip(tau):
    got = P.tau_from_raw(torch.tensor(P.tau_to_raw(tau), dtype=torch.float64)).item()
    assert got == pytest.approx(tau, rel=1e-6)


def test_tau_bounds_and_clipping():
    raw = torch.linspace(-50, 50, 101, dtype=torch.float64)
    tau = P.tau_from_raw(raw)
    assert (tau >= P.TAU_MIN).all() and P.TAU_MIN == 25.0 and P.TAU_MAX == 200.0
    assert (tau[raw > -30] > P.TAU_MIN).all()  # equality only once softplus underflows
    # alpha = dt / tau <= 1 for dt = TAU_MIN: the fix of the predecessor's diverging learnable tau
    assert (25.0 / tau <= 1).all()
    # initial taus below TAU_MIN + 0.01 * 87.5 start at that floor
    floor = P.tau_from_raw(torch.tensor(P.tau_to_raw(10.0), dtype=torch.float64)).item()
    assert floor == pytest.approx(25.0 + 0.875, rel=1e-6)
    # softplus(raw) = 2 gives TAU_MAX
    assert P.tau_from_raw(torch.tensor(np.log(np.exp(2.0) - 1))).item() == pytest.approx(200.0, rel=1e-6)


def test_init_dale_magnitudes():
    np.random.seed(0)
    w = P.init_dale_magnitudes(8, 2, spectral_radius=0.7)
    assert w.shape == (10, 10) and (w >= 0).all() and (np.diag(w) == 0).all()
    np.testing.assert_allclose(w[:, :8].sum(1), w[:, 8:].sum(1), rtol=1e-6)
    sign = np.ones((10, 10))
    sign[:, 8:] = -1
    assert np.abs(np.linalg.eigvals(w * sign)).max() == pytest.approx(0.7)
    # no inhibitory units: no balancing, still scaled
    w_e = P.init_dale_magnitudes(5, 0, spectral_radius=0.9)
    assert np.abs(np.linalg.eigvals(w_e)).max() == pytest.approx(0.9)


def test_init_unconstrained_and_low_rank():
    np.random.seed(0)
    w = P.init_unconstrained(12, spectral_radius=0.5)
    assert (np.diag(w) == 0).all() and (w < 0).any() and (w > 0).any()
    assert np.abs(np.linalg.eigvals(w)).max() == pytest.approx(0.5)
    torch.manual_seed(0)
    u, v = P.init_low_rank_factors(200, 4, spectral_radius=0.9)
    assert u.shape == v.shape == (200, 4)
    # entries ~ N(0, 1/r) * 0.9 / sqrt(r)  ->  std 0.9 / r
    assert u.std().item() == pytest.approx(0.9 / 4, rel=0.15)
