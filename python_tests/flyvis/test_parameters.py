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


# -- the shipped trained network (flyvis flow/0000/000) ----------------------------------------------
def _checkpoint():
    from eirnn_fast.flyvis.parameters import pretrained_path

    return torch.load(pretrained_path(), map_location="cpu", weights_only=True)["network"]


def test_pretrained_is_shipped_with_its_notices():
    from eirnn_fast.flyvis.parameters import pretrained_path

    folder = pretrained_path().parent
    for name in ("best_chkpt", "_meta.yaml", "LICENSE_flyvis.txt", "LICENCE_flyvis-gnn.md", "PROVENANCE.md"):
        assert (folder / name).stat().st_size > 0, name
    import hashlib

    digest = hashlib.sha256(pretrained_path().read_bytes()).hexdigest()
    assert digest == "d8a57a022aa18ca338599be713af9db29b89cde4b00098ffe42b78f0d583e46a"
    with pytest.raises(ValueError, match="unknown pretrained"):
        pretrained_path("flow/0000/999")


@pytest.mark.parametrize("extent", [1, 2, 8])
def test_pretrained_maps_by_key_onto_any_extent(extent):
    """Every edge's W is sign x count x the checkpoint strength of its (source type, target type) pair,
    found by name through the checkpoint's own ordering (first appearance at extent 15); tau and V_rest
    by type name. Checked against an independent by-name lookup."""
    from eirnn_fast.flyvis.parameters import load_pretrained

    c = load_connectome(extent)
    p = load_pretrained(c)
    ck = _checkpoint()
    ref = load_connectome(15)
    ep = ref.edge_pair.numpy()
    order = ep[np.sort(np.unique(ep, return_index=True)[1])]
    by_name = {
        (ref.cell_type[int(ref.pair_src_type[q])], ref.cell_type[int(ref.pair_dst_type[q])]): float(s)
        for q, s in zip(order, ck["edges_syn_strength"])
    }
    names = c.cell_type
    st, dt_ = c.pair_src_type[c.edge_pair].numpy(), c.pair_dst_type[c.edge_pair].numpy()
    strength = np.array([by_name[(names[a], names[b])] for a, b in zip(st, dt_)])
    np.testing.assert_allclose(p.W.numpy(), (c.sign.numpy() * c.syn_count.numpy() * strength), rtol=1e-6)
    # types: flyvis's node table is type-major in the spec's order, so the checkpoint's order is ours
    np.testing.assert_allclose(p.tau.numpy(), ck["nodes_time_const"].numpy()[c.type_index.numpy()])
    np.testing.assert_allclose(p.V_rest.numpy(), ck["nodes_bias"].numpy()[c.type_index.numpy()])
    assert float(p.tau.min()) < 0.02  # raw, unclamped time constants
    assert p.info["source"] == "flyvis:flow/0000/000"


def test_pretrained_ordering_is_checked_by_the_synapse_counts():
    """The 2,355 per-offset log counts of the checkpoint equal the compiled connectome's in the mapped
    order, and a wrong (sorted) pair order breaks the sign agreement the loader checks."""
    ck = _checkpoint()
    ref = load_connectome(15)
    ep = ref.edge_pair.numpy()
    first = np.sort(np.unique(ep, return_index=True)[1])
    assert np.array_equal(ref.pair_sign.numpy()[ep[first]], ck["edges_sign"].numpy())
    du = (ref.u[ref.dst] - ref.u[ref.src]).numpy()
    dv = (ref.v[ref.dst] - ref.v[ref.src]).numpy()
    first_off = np.sort(np.unique(np.rec.fromarrays([ep, du, dv]), return_index=True)[1])
    np.testing.assert_allclose(ref.syn_count.numpy()[first_off], np.exp(ck["edges_syn_count"].numpy()), rtol=1e-5)
    srt = np.unique(ep)  # numeric (JSON) order without the first-appearance rule: here the same set
    assert srt.size == ck["edges_sign"].numel() == 604
    names = np.array(ref.cell_type)
    alpha = np.lexsort((names[ref.pair_dst_type.numpy()[srt]], names[ref.pair_src_type.numpy()[srt]]))
    assert not np.array_equal(ref.pair_sign.numpy()[srt[alpha]], ck["edges_sign"].numpy())


def test_pretrained_statistics_match_provenance():
    from eirnn_fast.flyvis.parameters import load_pretrained

    c = load_connectome(1)
    p = load_pretrained(c)
    assert int((p.W == 0).sum()) == 317  # PROVENANCE: 317 of the 8,174 extent-1 edges have strength 0
    assert abs(spectral_radius(c, p.W) - 1.17) < 0.01


def test_resolve_parameters_specs(tmp_path):
    from eirnn_fast.flyvis.parameters import resolve_parameters

    c = load_connectome(1)
    assert resolve_parameters(None, c).info["source"] == "flyvis:flow/0000/000"
    s = resolve_parameters("sampled", c, seed=3)
    assert torch.equal(s.W, sample_parameters(c, 3).W)
    s.save(tmp_path / "p.npz")
    assert torch.equal(resolve_parameters(str(tmp_path / "p.npz"), c).W, s.W)
    with pytest.raises(ValueError, match="unknown pretrained"):
        resolve_parameters("flyvis:nope", c)
    with pytest.raises(FileNotFoundError):
        resolve_parameters(str(tmp_path / "missing.npz"), c)
    with pytest.raises(TypeError, match="params must be"):
        resolve_parameters(3, c)


def test_pretrained_equals_the_flyvis_package_at_extent_1():
    """The real flyvis 1.2.0 package, run as an oracle (fixture, see its PROVENANCE), puts the same
    neurons and edges in the same order and the same parameters on them."""
    from pathlib import Path

    from eirnn_fast.flyvis.parameters import load_pretrained

    o = np.load(Path(__file__).resolve().parents[1] / "fixtures" / "flyvis_1.2.0_flow_0000_000_extent1.npz")
    c = load_connectome(1)
    p = load_pretrained(c)
    assert np.array_equal(o["src"], c.src.numpy()) and np.array_equal(o["dst"], c.dst.numpy())
    np.testing.assert_allclose(p.W.numpy(), o["W"], rtol=0, atol=1e-6)
    np.testing.assert_array_equal(p.tau.numpy(), o["tau"])
    np.testing.assert_array_equal(p.V_rest.numpy(), o["V_rest"])
