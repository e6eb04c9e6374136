"""Ground-truth parameters: statistics, determinism, stability bound, user files."""

import numpy as np
import pytest
import torch

from eirnn_fast.flyvis import load_connectome, load_parameters, sample_parameters, weight_statistics
from eirnn_fast.flyvis.parameters import spectral_radius


@pytest.fixture(scope="module")
def con():
    return load_connectome(2)


def test_sample_shapes_and_ranges(con):
    p = sample_parameters(con, 0)
    assert p.tau.shape == (con.n_neurons,) and p.W.shape == (con.n_edges,)
    assert p.tau_type.shape == (65,) and p.strength.shape == (605,)
    assert torch.equal(p.tau, p.tau_type[con.type_index])
    assert ((p.tau_type >= 0.0194) & (p.tau_type <= 0.3201)).all()
    assert int((p.tau_type <= 0.02).sum()) == 51
    assert ((p.V_rest_type >= 0) & (p.V_rest_type <= 0.8)).all()
    assert (p.strength >= 0).all()
    # W = sign x count x strength, sign from the connectome
    nz = p.W != 0
    assert torch.equal(torch.sign(p.W[nz]), con.sign[nz])
    expect = con.sign * con.syn_count * p.strength[con.edge_pair]
    torch.testing.assert_close(p.W, expect)


def test_statistics_and_spectral_radius(con):
    p = sample_parameters(con, 1)
    s = weight_statistics(con, p.W)
    assert 0.005 < s["abs_median"] < 0.05
    assert 0.0 < s["frac_zero"] < 0.15
    assert abs(s["spectral_radius"] - 1.7) < 0.01
    # excitatory Perron root <= 0.9 (the stability bound)
    wp = torch.clamp(p.W, min=0)
    assert spectral_radius(con, wp) <= 0.9 + 1e-3


def test_deterministic_per_seed(con):
    a, b, c = sample_parameters(con, 3), sample_parameters(con, 3), sample_parameters(con, 4)
    assert torch.equal(a.W, b.W) and torch.equal(a.tau, b.tau)
    assert not torch.equal(a.W, c.W)


def test_load_parameters_roundtrip_and_per_type(tmp_path, con):
    p = sample_parameters(con, 0)
    f = tmp_path / "p.npz"
    p.save(f)
    q = load_parameters(f, con)
    assert torch.equal(q.W, p.W) and torch.equal(q.tau, p.tau)
    g = tmp_path / "types.npz"
    np.savez(g, tau=p.tau_type.numpy(), V_rest=p.V_rest_type.numpy(), strength=p.strength.numpy())
    r = load_parameters(g, con)
    torch.testing.assert_close(r.W, p.W)
    torch.testing.assert_close(r.V_rest, p.V_rest)


def test_load_parameters_errors(tmp_path, con):
    n, e = con.n_neurons, con.n_edges
    good = dict(tau=np.full(65, 0.02), V_rest=np.zeros(65), W=np.zeros(e))
    cases = [
        (dict(good, tau=np.full(7, 0.02)), "tau"),
        (dict(good, tau=np.full(65, -1.0)), "tau"),
        (dict(good, W=np.zeros(e + 1)), "'W'"),
        ({k: v for k, v in good.items() if k != "V_rest"}, "V_rest"),
        ({k: v for k, v in good.items() if k != "W"}, "lacks 'W'"),
        (dict(good, V_rest=np.full(n, np.nan)), "non-finite"),
    ]
    for i, (arrays, msg) in enumerate(cases):
        f = tmp_path / f"bad{i}.npz"
        np.savez(f, **arrays)
        with pytest.raises(ValueError, match=msg):
            load_parameters(f, con)
    junk = tmp_path / "junk.npz"
    junk.write_text("not a zip")
    with pytest.raises(ValueError, match="not a readable npz"):
        load_parameters(junk, con)
    with pytest.raises(FileNotFoundError):
        load_parameters(tmp_path / "missing.npz", con)
