"""Constructor arguments of EIRNN / create_model_from_data and the recorded-unit index: invalid
values raise a ValueError or TypeError naming the argument (the fuzz run of issue 18 found
EIRNN(tau=-50) building alpha = -0.5 and NaN rates, tau=0 a ZeroDivisionError,
create_model_from_data(-1, 3, 14) building 12 E + 3 I units and (4.5, 1, 3) truncating)."""

import warnings

import numpy as np
import pytest
import torch

from eirnn_fast import EIRNN, create_model_from_data
from eirnn_fast.models import ei_unit_counts, select_units

NAN, INF = float("nan"), float("inf")


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        (dict(tau=-50.0), ValueError, "tau must be > 0, got -50"),
        (dict(tau=0.0), ValueError, "tau must be > 0, got 0"),
        (dict(tau=NAN), ValueError, "tau must be finite"),
        (dict(tau="50"), TypeError, "tau must be a real number"),
        (dict(dt=0.0), ValueError, "dt must be > 0"),
        (dict(dt=-25.0, learnable_tau="neuron"), ValueError, "dt must be > 0"),
        (dict(dt=INF), ValueError, "dt must be finite"),
        (dict(noise_scale=-0.1), ValueError, "noise_scale must be >= 0"),
        (dict(noise_scale=NAN), ValueError, "noise_scale must be finite"),
        (dict(spectral_radius=-1.0), ValueError, "spectral_radius must be >= 0"),
        (dict(spectral_radius=NAN), ValueError, "spectral_radius must be finite"),
        (dict(spectral_radius=None), TypeError, "spectral_radius must be a real number"),
        (dict(learnable_alpha="neuron", alpha_init=NAN), ValueError, "alpha_init must be finite"),
        (dict(learnable_alpha="population", alpha_i_init=INF), ValueError, "alpha_i_init must be finite"),
        (dict(learnable_tau="neuron", tau_e_init=NAN), ValueError, "tau_e_init must be finite"),
        (dict(learnable_h0=True, h0_init=NAN), ValueError, "h0_init must be finite"),
        (dict(tau=True), TypeError, "tau must be a real number"),
    ],
)
def test_eirnn_rejects_bad_numbers(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        EIRNN(4, 1, 3, **kwargs)


def test_eirnn_valid_edges_still_build():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # alpha > 1 warns, as before
        assert EIRNN(4, 1, 3, tau=10.0).alpha == 2.5
    assert EIRNN(4, 1, 3, noise_scale=0.0, spectral_radius=0.0).W_rec.abs().max().item() == 0.0
    assert EIRNN(4, 1, 3, tau=np.float32(40.0), dt=np.int64(20)).alpha == 0.5
    # learnable modes do not use tau: a predecessor config may leave it at anything numeric
    EIRNN(4, 1, 3, learnable_alpha="neuron", alpha_init=1.5)  # clipped to 0.99 as the predecessor
    rates, _ = EIRNN(4, 1, 3, tau=50.0)(torch.rand(2, 5, 3), noise=False)
    assert torch.isfinite(rates).all()


@pytest.mark.parametrize(
    "args, kwargs, exc, match",
    [
        ((-1, 3, 14), {}, ValueError, "n_classic must be >= 0, got -1"),
        ((4, -2, 14), {}, ValueError, "n_interneuron must be >= 0"),
        ((4.5, 1, 3), {}, TypeError, "n_classic must be an int, got float 4.5"),
        ((4, 1.0, 3), {}, TypeError, "n_interneuron must be an int"),
        ((True, 1, 3), {}, TypeError, "n_classic must be an int"),
        ((4, 1, 3), dict(target_ratio=0.0), ValueError, "target_ratio must be > 0"),
        ((4, 1, 3), dict(target_ratio=-4.0), ValueError, "target_ratio must be > 0"),
        ((4, 1, 3), dict(target_ratio=NAN), ValueError, "target_ratio must be finite"),
        ((4, 1, 3), dict(target_total=-5), ValueError, "target_total must be >= 1"),
        ((4, 1, 3), dict(target_total=2.5), TypeError, "target_total must be an int"),
        ((4, 1, 0), {}, ValueError, "n_inputs >= 1"),
        ((4, 1, 3), dict(tau=-50.0), ValueError, "tau must be > 0"),
    ],
)
def test_create_model_from_data_rejects_bad_counts(args, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        create_model_from_data(*args, **kwargs)


def test_unit_counts_accept_numpy_ints():
    assert ei_unit_counts(np.int64(41), np.int32(13)) == (52, 13)
    assert create_model_from_data(8, 6, 14).n_total == 30


def test_select_units_names_out_of_range_unit_index():
    rates = torch.rand(2, 3, 5)
    with pytest.raises(ValueError, match=r"unit_index holds unit 7, outside \[0, 5\)"):
        select_units(rates, [0, 7])
    with pytest.raises(ValueError, match=r"unit_index holds unit -1"):
        select_units(rates, torch.tensor([-1, 2]))
    with pytest.raises(TypeError, match="unit_index must be a 1-D sequence of ints"):
        select_units(rates, [0.0, 1.0])
    with pytest.raises(TypeError, match="unit_index must be a 1-D sequence of ints"):
        select_units(rates, [[0, 1]])
    assert torch.equal(select_units(rates, [4, 0]), rates[..., [4, 0]])
    assert select_units(rates, []).shape == (2, 3, 0)
