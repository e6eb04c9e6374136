"""The FlyVis optic-lobe connectome, compiled from flyvis' MIT connectome spec without importing flyvis.

The spec ``fib25-fib19_v2.2.json`` (shipped in ``eirnn_fast/flyvis/data`` with its MIT notice, copied
from the ``flyvis==1.2.0`` wheel) lists 65 cell types with their lattice pattern and 605 type-to-type
edge sets, each a list of ``[[du, dv], n_syn]`` offsets in axial hexagonal coordinates with a sign
``alpha`` (+1 excitatory, -1 inhibitory). The network is compiled the way flyvis'
``ConnectomeFromAvgFilters`` does it:

* **nodes**: for each type (JSON order), every lattice point ``(u, v)`` of the hexagon of radius
  ``extent`` (``-n <= u <= n``, ``max(-n, -n-u) <= v <= min(n, n-u)``) with ``u % su == 0`` and
  ``v % sv == 0`` for the type's stride ``(su, sv)`` (63 types stride (1, 1), Lawf1/Lawf2 (3, 2));
  ``3n(n+1)+1`` columns, 217 at extent 8;
* **offsets**: an edge set with at least 3 offsets is completed with every integer point inside the
  convex hull of its offsets (qhull with joggle on the offsets scaled by 1 + 1e-6, then a
  crossing-number point-in-polygon test with matplotlib's half-open boundary rules), each with
  synapse count 1;
* **edges**: for every edge set, offset (reported ones first, then the filled ones in (du, dv)
  lexicographic order) and source node (node order), an edge to the target-type node at
  ``(u + du, v + dv)`` when it exists. The synapse count of an edge is that of its offset.

Extent 8 gives 13,741 neurons, 434,112 edges and 1,736 photoreceptors (R1-R8); extent 15 (flyvis'
default) 45,669 neurons and 1,513,231 edges.
"""

from __future__ import annotations

import functools
import hashlib
import json
import zipfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Dict, Optional, Tuple, Union

import numpy as np
import torch

SPEC_NAME = "fib25-fib19_v2.2.json"
SPEC_SHA256 = "bfbb0766251ff09e22723d0ebbf7b14793e70b3ae8ad0eea64eac9d28223351a"
WHEEL_MEMBER = "flyvis/connectome/" + SPEC_NAME
MAX_EXTENT = 60

PathLike = Union[str, Path]


# --------------------------------------------------------------------------------------------------
# spec loading


def spec_from_wheel(wheel_path: PathLike) -> bytes:
    """Raw bytes of the connectome spec inside a flyvis wheel (``pip download --no-deps flyvis==1.2.0``)."""
    with zipfile.ZipFile(wheel_path) as zf:
        try:
            return zf.read(WHEEL_MEMBER)
        except KeyError:
            raise ValueError(f"{wheel_path} has no member {WHEEL_MEMBER!r}; is it a flyvis wheel?") from None


def load_spec(path: Optional[PathLike] = None) -> dict:
    """The connectome spec as a dict: the shipped JSON by default, or a user's ``.json`` / flyvis ``.whl``."""
    if path is None:
        raw = resources.files("eirnn_fast.flyvis").joinpath("data", SPEC_NAME).read_bytes()
    else:
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"connectome spec {path} does not exist")
        raw = spec_from_wheel(path) if path.suffix == ".whl" else path.read_bytes()
    try:
        spec = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValueError(f"connectome spec {path or SPEC_NAME} is not valid JSON: {exc}") from None
    for key in ("nodes", "edges", "input_units"):
        if key not in spec:
            raise ValueError(f"connectome spec {path or SPEC_NAME} lacks the key {key!r}")
    return spec


def spec_sha256(path: Optional[PathLike] = None) -> str:
    if path is None:
        raw = resources.files("eirnn_fast.flyvis").joinpath("data", SPEC_NAME).read_bytes()
    else:
        raw = Path(path).read_bytes()
    return hashlib.sha256(raw).hexdigest()


# --------------------------------------------------------------------------------------------------
# geometry


def hex_lattice(extent: int, stride_u: int = 1, stride_v: int = 1) -> np.ndarray:
    """Axial coordinates [M, 2] of the hexagon of radius ``extent``, u-major, keeping stride multiples."""
    pts = []
    for u in range(-extent, extent + 1):
        if u % stride_u:
            continue
        for v in range(max(-extent, -extent - u), min(extent, extent - u) + 1):
            if v % stride_v == 0:
                pts.append((u, v))
    return np.asarray(pts, dtype=np.int64).reshape(-1, 2)


def hex_to_cartesian(u, v) -> Tuple[np.ndarray, np.ndarray]:
    """Cartesian centres of axial hex coordinates (unit spacing between neighbouring columns)."""
    u = np.asarray(u, dtype=np.float64)
    v = np.asarray(v, dtype=np.float64)
    return u + 0.5 * v, (np.sqrt(3.0) / 2.0) * v


def _points_in_polygon(poly: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Crossing-number test with the half-open comparisons of matplotlib's ``Path.contains_points``.

    poly [K, 2] vertices (closed implicitly), pts [M, 2]; returns bool [M]. Boundary points are
    decided exactly as matplotlib decides them, which matters for lattice points on hull edges.
    """
    px = pts[:, 0].astype(np.float64)
    py = pts[:, 1].astype(np.float64)
    inside = np.zeros(len(pts), dtype=bool)
    k = len(poly)
    for i in range(k):
        x0, y0 = float(poly[i - 1, 0]), float(poly[i - 1, 1])
        x1, y1 = float(poly[i, 0]), float(poly[i, 1])
        above0 = y0 >= py
        above1 = y1 >= py
        crosses = above0 != above1
        side = ((y1 - py) * (x0 - x1)) >= ((x1 - px) * (y0 - y1))
        inside ^= crosses & (side == above1)
    return inside


def _hull_fill(offsets: np.ndarray) -> np.ndarray:
    """Integer offsets [M, 2] inside the convex hull of ``offsets`` [K, 2] (K >= 3) not already listed."""
    from scipy.spatial import ConvexHull

    hull = ConvexHull(offsets.astype(np.float64) * (1.0 + 1e-6), incremental=False, qhull_options="QJ")
    poly = offsets[hull.vertices]
    lo, hi = offsets.min(0), offsets.max(0)
    gu, gv = np.meshgrid(np.arange(lo[0], hi[0] + 1), np.arange(lo[1], hi[1] + 1), indexing="ij")
    grid = np.stack([gu.ravel(), gv.ravel()], 1)
    cand = grid[_points_in_polygon(poly, grid)]
    known = {(int(a), int(b)) for a, b in offsets}
    keep = np.array([(int(a), int(b)) not in known for a, b in cand], dtype=bool)
    return cand[keep].reshape(-1, 2)


# --------------------------------------------------------------------------------------------------
# the compiled network


@dataclass(frozen=True, eq=False)
class Connectome:
    """A compiled FlyVis network. All index tensors are int64 on the CPU; treat them as read-only
    (objects are cached per extent and shared).

    Neurons are ordered type by type (JSON order), within a type by lattice point (u-major).
    Edges e = (src[e] -> dst[e]) are in flyvis' compile order. "Pairs" are the 605 JSON edge sets
    (source type, target type), in JSON order, whether or not they produce edges at this extent, so
    per-pair parameters carry over between extents.
    """

    extent: int
    cell_type: Tuple[str, ...]  # [65] type names
    type_index: torch.Tensor  # [N] index into cell_type
    u: torch.Tensor  # [N] axial hex coordinates
    v: torch.Tensor  # [N]
    column: torch.Tensor  # [N] index into the columns (column_u, column_v) of this extent
    column_u: torch.Tensor  # [C] C = 3 n (n + 1) + 1
    column_v: torch.Tensor  # [C]
    src: torch.Tensor  # [E] presynaptic neuron
    dst: torch.Tensor  # [E] postsynaptic neuron
    sign: torch.Tensor  # [E] float32, +1 / -1
    syn_count: torch.Tensor  # [E] float32, synapses per connection (1 for hull-filled offsets)
    filled: torch.Tensor  # [E] bool, edge comes from the hull fill
    edge_pair: torch.Tensor  # [E] index into the pairs
    pair_src_type: torch.Tensor  # [P] type index
    pair_dst_type: torch.Tensor  # [P]
    pair_sign: torch.Tensor  # [P] float32
    input_types: Tuple[str, ...]  # ("R1", ..., "R8")
    input_indices: torch.Tensor  # [n_inputs] neurons of the input types, type-major, column order
    output_types: Tuple[str, ...]

    @property
    def n_neurons(self) -> int:
        return int(self.type_index.numel())

    @property
    def n_edges(self) -> int:
        return int(self.src.numel())

    @property
    def n_types(self) -> int:
        return len(self.cell_type)

    @property
    def n_pairs(self) -> int:
        return int(self.pair_sign.numel())

    @property
    def n_columns(self) -> int:
        return int(self.column_u.numel())

    @property
    def n_inputs(self) -> int:
        return int(self.input_indices.numel())

    def type_id(self, name: str) -> int:
        try:
            return self.cell_type.index(name)
        except ValueError:
            raise KeyError(f"unknown cell type {name!r}; known: {', '.join(self.cell_type)}") from None

    def neurons_of(self, name: str) -> torch.Tensor:
        """Indices of the neurons of one cell type (column order)."""
        return torch.nonzero(self.type_index == self.type_id(name)).flatten()

    def dense_weights(self, edge_weight: torch.Tensor, dtype=torch.float64) -> torch.Tensor:
        """Dense [N, N] matrix W[dst, src] (for small extents and tests)."""
        w = torch.zeros(self.n_neurons, self.n_neurons, dtype=dtype)
        w.index_put_((self.dst, self.src), edge_weight.to(dtype), accumulate=True)
        return w

    def sparse_weights(self, edge_weight):
        """scipy.sparse CSR matrix W[dst, src]."""
        import scipy.sparse as sp

        w = np.asarray(edge_weight, dtype=np.float64)
        return sp.csr_matrix((w, (self.dst.numpy(), self.src.numpy())), shape=(self.n_neurons,) * 2)

    def summary(self) -> Dict[str, int]:
        return {
            "extent": self.extent,
            "n_neurons": self.n_neurons,
            "n_edges": self.n_edges,
            "n_inputs": self.n_inputs,
            "n_types": self.n_types,
            "n_pairs": self.n_pairs,
            "n_columns": self.n_columns,
        }


def _check_extent(extent) -> int:
    if isinstance(extent, bool) or not isinstance(extent, (int, np.integer)):
        raise TypeError(f"extent must be an int, got {type(extent).__name__} {extent!r}")
    extent = int(extent)
    if not 1 <= extent <= MAX_EXTENT:
        raise ValueError(f"extent must be in [1, {MAX_EXTENT}], got {extent}")
    return extent


def compile_connectome(spec: dict, extent: int) -> Connectome:
    """Compile a connectome spec (dict as in ``fib25-fib19_v2.2.json``) on the hexagon of radius ``extent``."""
    extent = _check_extent(extent)
    names = [n["name"] for n in spec["nodes"]]
    if len(set(names)) != len(names):
        raise ValueError("connectome spec has duplicate cell-type names")
    tid = {name: i for i, name in enumerate(names)}

    # nodes
    type_parts, coord_parts = [], []
    for i, node in enumerate(spec["nodes"]):
        kind, arg = node["pattern"]
        if kind == "stride":
            su, sv = int(arg[0]), int(arg[1])
            pts = hex_lattice(extent, su, sv)
        elif kind == "tile":
            pts = hex_lattice(extent, int(arg), int(arg))
        elif kind == "single":
            pts = np.zeros((1, 2), dtype=np.int64)
        else:
            raise ValueError(f"cell type {node['name']!r} has an unknown lattice pattern {kind!r}")
        type_parts.append(np.full(len(pts), i, dtype=np.int64))
        coord_parts.append(pts)
    type_index = np.concatenate(type_parts)
    coords = np.concatenate(coord_parts)
    n_neurons = len(type_index)
    starts = np.concatenate([[0], np.cumsum([len(p) for p in type_parts])])

    # columns and the (type, u, v) -> neuron lookup table, padded by the largest offset
    cols = hex_lattice(extent)
    max_off = max(max(abs(int(o[0][0])), abs(int(o[0][1]))) for e in spec["edges"] for o in e["offsets"])
    pad = max_off + 1
    side = 2 * (extent + pad) + 1
    lut = np.full((len(names), side, side), -1, dtype=np.int64)
    lut[type_index, coords[:, 0] + extent + pad, coords[:, 1] + extent + pad] = np.arange(n_neurons)
    col_lut = np.full((side, side), -1, dtype=np.int64)
    col_lut[cols[:, 0] + extent + pad, cols[:, 1] + extent + pad] = np.arange(len(cols))
    column = col_lut[coords[:, 0] + extent + pad, coords[:, 1] + extent + pad]

    # edges
    src_l, dst_l, cnt_l, fill_l, pair_l = [], [], [], [], []
    pair_src, pair_dst, pair_sign = [], [], []
    for p, es in enumerate(spec["edges"]):
        s_t, d_t = tid[es["src"]], tid[es["tar"]]
        alpha = float(es["alpha"])
        if alpha not in (1.0, -1.0):
            raise ValueError(f"edge set {es['src']}->{es['tar']} has sign {alpha}, expected +1 or -1")
        pair_src.append(s_t)
        pair_dst.append(d_t)
        pair_sign.append(alpha)
        offs = np.array([o[0] for o in es["offsets"]], dtype=np.int64).reshape(-1, 2)
        counts = np.array([float(o[1]) for o in es["offsets"]], dtype=np.float64)
        is_fill = np.zeros(len(offs), dtype=bool)
        if len(offs) >= 3:
            extra = _hull_fill(offs)
            offs = np.concatenate([offs, extra])
            counts = np.concatenate([counts, np.ones(len(extra))])
            is_fill = np.concatenate([is_fill, np.ones(len(extra), dtype=bool)])
        s_nodes = np.arange(starts[s_t], starts[s_t + 1])
        su, sv = coords[s_nodes, 0] + extent + pad, coords[s_nodes, 1] + extent + pad
        for (du, dv), c, f in zip(offs, counts, is_fill):
            tgt = lut[d_t, su + du, sv + dv]
            ok = tgt >= 0
            m = int(ok.sum())
            if m == 0:
                continue
            src_l.append(s_nodes[ok])
            dst_l.append(tgt[ok])
            cnt_l.append(np.full(m, c))
            fill_l.append(np.full(m, f))
            pair_l.append(np.full(m, p, dtype=np.int64))

    def cat(parts, dtype):
        return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype=dtype)

    src = cat(src_l, np.int64)
    dst = cat(dst_l, np.int64)
    edge_pair = cat(pair_l, np.int64)
    pair_sign_a = np.asarray(pair_sign, dtype=np.float32)

    input_types = tuple(spec["input_units"])
    for t in input_types:
        if t not in tid:
            raise ValueError(f"input unit {t!r} is not a cell type of the spec")
    input_indices = np.concatenate([np.arange(starts[tid[t]], starts[tid[t] + 1]) for t in input_types])

    t = torch.from_numpy
    return Connectome(
        extent=extent,
        cell_type=tuple(names),
        type_index=t(type_index),
        u=t(coords[:, 0].copy()),
        v=t(coords[:, 1].copy()),
        column=t(column),
        column_u=t(cols[:, 0].copy()),
        column_v=t(cols[:, 1].copy()),
        src=t(src),
        dst=t(dst),
        sign=t(pair_sign_a[edge_pair]),
        syn_count=t(cat(cnt_l, np.float32)),
        filled=t(cat(fill_l, bool)),
        edge_pair=t(edge_pair),
        pair_src_type=t(np.asarray(pair_src, dtype=np.int64)),
        pair_dst_type=t(np.asarray(pair_dst, dtype=np.int64)),
        pair_sign=t(pair_sign_a),
        input_types=input_types,
        input_indices=t(input_indices.astype(np.int64)),
        output_types=tuple(spec.get("output_units", ())),
    )


@functools.lru_cache(maxsize=8)
def _cached(extent: int, spec_path: Optional[str]) -> Connectome:
    return compile_connectome(load_spec(spec_path), extent)


def load_connectome(extent: int = 8, spec_path: Optional[PathLike] = None) -> Connectome:
    """The compiled FlyVis connectome at ``extent`` (cached per extent and spec).

    ``spec_path``: a connectome JSON or a flyvis wheel; default the shipped ``fib25-fib19_v2.2.json``.
    Extent 8: 13,741 neurons, 434,112 edges, 1,736 inputs; extent 15: 45,669 / 1,513,231.
    """
    extent = _check_extent(extent)
    return _cached(extent, None if spec_path is None else str(Path(spec_path).resolve()))
