"""FlyVis connectome compiler: counts against flyvis, structure, spec loading."""

import json
import zipfile

import numpy as np
import pytest
import torch

from eirnn_fast.flyvis import connectome as cm
from eirnn_fast.flyvis import load_connectome, load_spec


@pytest.mark.parametrize(
    "extent,n_neurons,n_edges,n_inputs",
    [
        (1, 443, 8174, 56),
        (2, 1203, 28904, 152),
        (8, 13741, 434112, 1736),
    ],
)
def test_counts(extent, n_neurons, n_edges, n_inputs):
    c = load_connectome(extent)
    assert (c.n_neurons, c.n_edges, c.n_inputs) == (n_neurons, n_edges, n_inputs)
    assert len(c.cell_type) == 65 and c.n_columns == 3 * extent * (extent + 1) + 1
    assert c.n_inputs == 8 * c.n_columns


@pytest.mark.slow
def test_counts_extent_15():
    c = load_connectome(15)
    assert (c.n_neurons, c.n_edges, c.n_inputs) == (45669, 1513231, 5768)


def test_extent8_structure():
    c = load_connectome(8)
    key = c.dst * c.n_neurons + c.src
    assert key.unique().numel() == c.n_edges, "duplicate (src, dst) pairs"
    assert int((c.src == c.dst).sum()) == 3724
    assert int(c.filled.sum()) == 43314
    assert int((c.syn_count[c.filled] == 1).all())
    # 63 types x 217 columns + Lawf1/Lawf2 on the stride-(3, 2) sub-lattice
    counts = torch.bincount(c.type_index, minlength=65)
    assert sorted(set(counts.tolist())) == [35, 217]
    assert c.cell_type[:8] == tuple(f"R{i}" for i in range(1, 9))
    assert c.input_types == tuple(f"R{i}" for i in range(1, 9))
    assert set(c.type_index[c.input_indices].tolist()) == set(range(8))
    # offsets stay within |du|, |dv| <= 6
    assert int((c.u[c.dst] - c.u[c.src]).abs().max()) <= 6
    assert int((c.v[c.dst] - c.v[c.src]).abs().max()) <= 6


def test_sign_consistent_per_type_pair():
    c = load_connectome(2)
    st, dt_ = c.type_index[c.src], c.type_index[c.dst]
    pair = st * 65 + dt_
    for p in pair.unique().tolist():
        s = c.sign[pair == p]
        assert bool((s == s[0]).all()), f"pair {divmod(p, 65)} has mixed signs"
    assert set(c.sign.unique().tolist()) == {-1.0, 1.0}
    # edge sets are unique per (src type, dst type), so pair index and type pair agree
    assert torch.equal(c.pair_src_type[c.edge_pair], st) and torch.equal(c.pair_dst_type[c.edge_pair], dt_)


def test_columns_and_lookup():
    c = load_connectome(2)
    assert torch.equal(c.u, c.column_u[c.column]) and torch.equal(c.v, c.column_v[c.column])
    assert c.neurons_of("L1").numel() == c.n_columns
    with pytest.raises(KeyError, match="unknown cell type"):
        c.type_id("nope")


def test_cache_and_spec_sha():
    assert load_connectome(2) is load_connectome(2)
    assert cm.spec_sha256() == cm.SPEC_SHA256


def test_spec_from_wheel_and_json(tmp_path):
    raw = json.dumps(load_spec()).encode()
    whl = tmp_path / "flyvis-1.2.0-py3-none-any.whl"
    with zipfile.ZipFile(whl, "w") as zf:
        zf.writestr(cm.WHEEL_MEMBER, raw)
    c = load_connectome(1, spec_path=whl)
    assert c.n_edges == load_connectome(1).n_edges
    bad = tmp_path / "bad.whl"
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("other.txt", "x")
    with pytest.raises(ValueError, match="no member"):
        load_connectome(1, spec_path=bad)
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_connectome(1, spec_path=broken)
    with pytest.raises(FileNotFoundError):
        load_connectome(1, spec_path=tmp_path / "missing.json")


@pytest.mark.parametrize(
    "extent,exc",
    [(0, ValueError), (-3, ValueError), (1000, ValueError), (2.5, TypeError), ("8", TypeError), (True, TypeError)],
)
def test_bad_extent(extent, exc):
    with pytest.raises(exc, match="extent"):
        load_connectome(extent)


def test_point_in_polygon_half_open():
    # unit square: lower-left boundary counts, upper-right does not (matplotlib's rule)
    sq = np.array([[0, 0], [2, 0], [2, 2], [0, 2]])
    pts = np.array([[1, 1], [0, 1], [2, 1], [1, 0], [1, 2], [3, 3]])
    got = cm._points_in_polygon(sq, pts)
    assert got[0] and not got[-1]
