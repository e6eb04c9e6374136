"""The raw edge ops (torch.ops.eirnn_fast.edge_*) under corrupted CSR arrays (issue 18, item 5).

The registered ops take the six CSR arrays as plain tensors, so any Python caller can hand them
made-up contents. The CPU kernels check every row span and every index as they walk the graph and
raise a ValueError naming the op and the array instead of reading out of bounds: a decreasing
``rowptr`` or one past E, a ``col`` outside [0, num_src) (or ``col_t`` outside [0, num_dst)), a
``perm`` outside [0, E). Before these checks the same calls segfaulted or returned garbage.
"""

import warnings

import pytest
import torch
from testutils import requires_compiled

import eirnn_fast.ops  # noqa: F401  (loads the extension: registers torch.ops.eirnn_fast.*)
from eirnn_fast.ops import EdgeGraph, edge_message_passing, edge_mlp_message_passing

pytestmark = requires_compiled

NUM_SRC, NUM_DST, E = 9, 7, 40
H, L = 4, 1
NAMES = ("rowptr", "col", "perm", "rowptr_t", "col_t", "perm_t")


def make_graph(index_dtype):
    gen = torch.Generator().manual_seed(3)
    src = torch.randint(0, NUM_SRC, (E,), generator=gen)
    dst = torch.randint(0, NUM_DST - 1, (E,), generator=gen)  # the last destination has no in-edge
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # duplicate pairs
        return EdgeGraph(src.to(index_dtype), dst.to(index_dtype), NUM_SRC, NUM_DST)


def arrays_of(graph):
    return {name: getattr(graph, name) for name in NAMES}  # copies


# Corruptions of one layout: (id, function(arrays, prefix) editing arrays[prefix + suffix] in place).
def _rowptr_decreasing(arrs, t):
    rp = arrs["rowptr" + t]
    assert rp[2] < E
    rp[1] = rp[2] + 1  # rows 0 and 2 stay inside [0, E]; row 1 runs backwards


def _rowptr_end_beyond_e(arrs, t):
    arrs["rowptr" + t][-1] = E + 5


def _rowptr_inner_beyond_e(arrs, t):
    arrs["rowptr" + t][1] = E + 5  # rowptr[-1] stays E: only the row walk sees it


def _set_first(name, value):
    def corrupt(arrs, t):
        arrs[name + t][0] = value

    return corrupt


CORRUPTIONS = {
    "rowptr_decreasing": ("rowptr", _rowptr_decreasing),
    "rowptr_end_beyond_E": ("rowptr", _rowptr_end_beyond_e),
    "rowptr_inner_beyond_E": ("rowptr", _rowptr_inner_beyond_e),
    "col_1e6": ("col", _set_first("col", 10**6)),
    "col_negative": ("col", _set_first("col", -5)),
    "perm_negative": ("perm", _set_first("perm", -5)),
    "perm_E": ("perm", _set_first("perm", E)),
}


def corrupted(index_dtype, case, transposed):
    t = "_t" if transposed else ""
    array, corrupt = CORRUPTIONS[case]
    arrs = arrays_of(make_graph(index_dtype))
    corrupt(arrs, t)
    return [arrs[n] for n in NAMES], array + t


def spmm_inputs(F, dtype=torch.float64):
    gen = torch.Generator().manual_seed(F)
    w = torch.randn(E, generator=gen, dtype=dtype)
    x = torch.randn(NUM_SRC, F, generator=gen, dtype=dtype)
    grad = torch.randn(NUM_DST, F, generator=gen, dtype=dtype)
    return w, x, grad


def mlp_inputs(F=2, dtype=torch.float64):
    gen = torch.Generator().manual_seed(11)

    def r(*shape):
        return torch.randn(*shape, generator=gen, dtype=dtype)

    return dict(
        w=r(E), a=r(F, NUM_DST, H), b=r(F, NUM_SRC, H), hw=r(L, H, H), hb=r(L, H), ow=r(H), ob=r(1), grad=r(NUM_DST, F)
    )


OPS = torch.ops.eirnn_fast


def call(op, csr, F):
    """Run one raw op on the six arrays csr (backward ops ask for every gradient)."""
    if op.startswith("edge_spmm"):
        w, x, grad = spmm_inputs(F)
        if op == "edge_spmm_fwd":
            return OPS.edge_spmm_fwd(*csr, w, x)
        return OPS.edge_spmm_bwd(*csr, w, x, grad, True, True)
    m = mlp_inputs(F)
    args = (*csr, m["w"], m["a"], m["b"], m["hw"], m["hb"], m["ow"], m["ob"])
    if op == "edge_mlp_fwd":
        return OPS.edge_mlp_fwd(*args)
    return OPS.edge_mlp_bwd(*args, m["grad"], True, True, True, True)


# Which layouts each op walks: the forward ops the CSR by destination, edge_spmm_bwd the CSR by
# source, edge_mlp_bwd both (d_w, d_a and the MLP weights by destination, d_b by source).
LAYOUTS = {
    "edge_spmm_fwd": (False,),
    "edge_spmm_bwd": (True,),
    "edge_mlp_fwd": (False,),
    "edge_mlp_bwd": (False, True),
}
# F = 1, 2, 4, 8 run the fixed-width spmm kernels, others the generic one
CASES = [
    (op, transposed, F)
    for op, layouts in LAYOUTS.items()
    for transposed in layouts
    for F in ((1, 3, 8) if op.startswith("edge_spmm") else (2,))
]


@pytest.mark.parametrize("case", list(CORRUPTIONS))
@pytest.mark.parametrize("index_dtype", [torch.int32, torch.int64])
@pytest.mark.parametrize("op,transposed,F", CASES)
def test_corrupted_array_raises_value_error_naming_it(op, transposed, F, index_dtype, case):
    csr, array = corrupted(index_dtype, case, transposed)
    with pytest.raises(ValueError, match=rf"^{op}: {array} "):
        call(op, csr, F)


@pytest.mark.parametrize("op,transposed,F", CASES)
def test_messages_say_what_is_wrong(op, transposed, F):
    t = "_t" if transposed else ""
    bound = "num_dst" if transposed else "num_src"
    expected = {
        "rowptr_decreasing": rf"{op}: rowptr{t} must be non-decreasing with entries in \[0, E\] \(E = {E}\)",
        "rowptr_end_beyond_E": rf"{op}: rowptr{t} must run from 0 to E = {E}, got rowptr{t}\[0\] = 0 and "
        rf"rowptr{t}\[-1\] = {E + 5}",
        "col_1e6": rf"{op}: col{t} holds an index outside \[0, {bound}\) \({bound} = ",
        "perm_E": rf"{op}: perm{t} holds an edge id outside \[0, E\) \(E = {E}\)",
    }
    for case, message in expected.items():
        csr, _ = corrupted(torch.int64, case, transposed)
        with pytest.raises(ValueError, match=message):
            call(op, csr, F)


@pytest.mark.parametrize("op", ["edge_spmm_fwd", "edge_mlp_fwd"])
def test_forward_ops_do_not_read_the_transposed_layout(op):
    """A forward walks only the CSR by destination: garbage in the *_t arrays changes nothing."""
    g = make_graph(torch.int64)
    valid = call(op, list(arrays_of(g).values()), 2)
    csr, _ = corrupted(torch.int64, "col_1e6", transposed=True)
    assert torch.equal(call(op, csr, 2), valid)


def test_spmm_backward_does_not_read_the_destination_layout():
    g = make_graph(torch.int64)
    valid = call("edge_spmm_bwd", list(arrays_of(g).values()), 3)
    csr, _ = corrupted(torch.int64, "perm_negative", transposed=False)
    for got, want in zip(call("edge_spmm_bwd", csr, 3), valid):
        assert torch.equal(got, want)


@pytest.mark.parametrize("index_dtype", [torch.int32, torch.int64])
@pytest.mark.parametrize("F", [1, 2, 3, 4, 8, 9])
def test_valid_arrays_pass_and_match_the_wrapper(index_dtype, F):
    """The checks reject nothing valid: empty rows, duplicate pairs, int32 and int64 indices."""
    g = make_graph(index_dtype)
    csr = [getattr(g, n) for n in NAMES]
    w, x, grad = spmm_inputs(F)
    assert torch.equal(OPS.edge_spmm_fwd(*csr, w, x), edge_message_passing(g, w, x, backend="fused"))
    wr, xr = w.clone().requires_grad_(), x.clone().requires_grad_()
    d_w, d_x = torch.autograd.grad(edge_message_passing(g, wr, xr, backend="fused"), (wr, xr), grad)
    raw_dw, raw_dx = OPS.edge_spmm_bwd(*csr, w, x, grad, True, True)
    assert torch.equal(raw_dw, d_w) and torch.equal(raw_dx, d_x)


def test_valid_arrays_pass_for_the_mlp_ops():
    g = make_graph(torch.int32)
    csr = [getattr(g, n) for n in NAMES]
    m = mlp_inputs()
    out = OPS.edge_mlp_fwd(*csr, m["w"], m["a"], m["b"], m["hw"], m["hb"], m["ow"], m["ob"])
    ref = edge_mlp_message_passing(g, m["w"], m["a"], m["b"], list(m["hw"]), list(m["hb"]), m["ow"], m["ob"])
    assert torch.equal(out, ref)
    grads = OPS.edge_mlp_bwd(
        *csr, m["w"], m["a"], m["b"], m["hw"], m["hb"], m["ow"], m["ob"], m["grad"], True, True, True, True
    )
    assert all(torch.isfinite(t).all() for t in grads)


def test_empty_graph_passes():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        g = EdgeGraph(torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long), 3, 4)
    csr = [getattr(g, n) for n in NAMES]
    x = torch.randn(3, 2, dtype=torch.float64)
    assert torch.equal(
        OPS.edge_spmm_fwd(*csr, torch.zeros(0, dtype=torch.float64), x), torch.zeros(4, 2, dtype=torch.float64)
    )


def test_editing_a_graphs_private_arrays_in_place_raises_not_crashes():
    """The issue's fuzz case through the public wrapper: the graph's own (private) index tensors
    edited in place are caught by the kernels' checks."""
    g = make_graph(torch.int64)
    g._arrays[1][0] = 10**6  # col of the CSR by destination
    w, x, _ = spmm_inputs(2)
    with pytest.raises(ValueError, match=r"^edge_spmm_fwd: col holds an index outside"):
        edge_message_passing(g, w, x, backend="fused")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("case", list(CORRUPTIONS))
@pytest.mark.parametrize("op,transposed,F", [c for c in CASES if c[0].startswith("edge_spmm")])
def test_cuda_kernels_skip_corrupted_entries_without_faulting(op, transposed, F, case):
    """The CUDA kernels do not report bad entries (no host sync per call) but skip them: the launch
    and the stream stay healthy and the forward's output is finite."""
    csr, _ = corrupted(torch.int32, case, transposed)
    csr = [t.cuda() for t in csr]
    w, x, grad = (t.cuda() for t in spmm_inputs(F))
    if op == "edge_spmm_fwd":
        out = OPS.edge_spmm_fwd(*csr, w, x)
        torch.cuda.synchronize()
        assert out.shape == (NUM_DST, F) and torch.isfinite(out).all()
    else:
        d_w, d_x = OPS.edge_spmm_bwd(*csr, w, x, grad, True, True)
        torch.cuda.synchronize()
        assert d_x.shape == (NUM_SRC, F) and torch.isfinite(d_x).all()
