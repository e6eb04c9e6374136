"""Table-driven bad-input suite for the public ops (issue 18, "Reliability").

Every case is one row generated from the tables below: an op, the argument changed and how (wrong
type, dtype, rank, size, zero size, device 'meta', a device mismatch, NaN/inf, out-of-range
scalars), and what must happen:

* ``_r(exc, pattern)``: a ValueError/TypeError (or the documented RuntimeError for an unavailable
  backend) whose message names the argument (``pattern``, default the argument's name), never an
  ATen/pybind internal message;
* ``AGREE``: the op runs and the fused and reference backends agree: values and gradients, NaN /
  +inf / -inf in the same places (the documented NaN policy of the RNN and message-passing ops);
* ``OK``: documented behaviour (state_noise_ works in place on any shape; an int64 edge list).

Small shapes: the whole file runs in a few seconds on one core.
"""

from __future__ import annotations

import math
import re
from typing import Callable

import numpy as np
import pytest
import torch
from testutils import requires_compiled

from eirnn_fast.ops import (
    EdgeGraph,
    edge_message_passing,
    edge_mlp_message_passing,
    ei_rnn_rates,
    ei_rnn_scan,
    relative_eps,
    sinkhorn,
    sinkhorn_plan,
    state_noise_,
)

pytestmark = [requires_compiled, pytest.mark.filterwarnings("ignore::UserWarning")]
F64 = torch.float64
NAN, INF = float("nan"), float("inf")


# ---------------------------------------------------------------------------------- base inputs
def _rand(*shape, seed=0, dtype=F64):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=F64).to(dtype)


def scan_args():
    return dict(
        drive=_rand(2, 3, 5), x0=_rand(2, 5, seed=1), w_rec=0.3 * _rand(5, 5, seed=2), alpha=torch.rand(5, dtype=F64)
    )


def rates_args():
    return dict(
        states=_rand(2, 3, 5),
        x0=_rand(2, 5, seed=1),
        rate_scale=torch.tensor(2.0, dtype=F64),
        rate_baseline=torch.tensor(-0.1, dtype=F64),
    )


def noise_args():
    return dict(drive=_rand(2, 3, 5), std=torch.tensor(0.3, dtype=F64))


GRAPH = EdgeGraph(torch.tensor([0, 1, 2, 2, 3, 0]), torch.tensor([1, 2, 0, 1, 2, 2]), 4, 3)


def mp_args():
    return dict(graph=GRAPH, edge_weight=_rand(6), node_values=_rand(4, 2, seed=1))


def mlp_args():
    return dict(
        graph=GRAPH,
        edge_weight=_rand(6),
        a_dst=_rand(2, 3, 4, seed=1),
        b_src=_rand(2, 4, 4, seed=2),
        hidden_weights=[0.5 * _rand(4, 4, seed=3)],
        hidden_biases=[_rand(4, seed=4)],
        out_weight=_rand(4, seed=5),
        out_bias=_rand(1, seed=6),
    )


def sk_args():
    return dict(x=_rand(2, 4, 3), y=_rand(2, 5, 3, seed=1), eps=0.5, a=torch.rand(2, 4, dtype=F64) + 0.1, b=None)


def graph_args():
    return dict(src=torch.tensor([0, 1, 2]), dst=torch.tensor([1, 2, 0]), num_src=3, num_dst=3)


OPS = {
    "ei_rnn_scan": (ei_rnn_scan, scan_args),
    "ei_rnn_rates": (ei_rnn_rates, rates_args),
    "state_noise_": (state_noise_, noise_args),
    "edge_message_passing": (edge_message_passing, mp_args),
    "edge_mlp_message_passing": (edge_mlp_message_passing, mlp_args),
    "sinkhorn": (sinkhorn, sk_args),
    "sinkhorn_plan": (sinkhorn_plan, sk_args),
    "relative_eps": (relative_eps, lambda: dict(x=_rand(2, 4, 3), y=_rand(2, 5, 3, seed=1))),
    "EdgeGraph": (EdgeGraph, graph_args),
}
POSITIONAL = {  # the ops' positional parameters, in order (the rest are keywords)
    "ei_rnn_scan": ["drive", "x0", "w_rec", "alpha"],
    "ei_rnn_rates": ["states", "x0", "rate_scale", "rate_baseline"],
    "state_noise_": ["drive", "std"],
    "edge_message_passing": ["graph", "edge_weight", "node_values"],
    "edge_mlp_message_passing": [
        "graph",
        "edge_weight",
        "a_dst",
        "b_src",
        "hidden_weights",
        "hidden_biases",
        "out_weight",
        "out_bias",
    ],
    "sinkhorn": ["x", "y"],
    "sinkhorn_plan": ["x", "y"],
    "relative_eps": ["x", "y"],
    "EdgeGraph": ["src", "dst", "num_src", "num_dst"],
}


def call(op, args, **extra):
    fn, _ = OPS[op]
    pos = [args[k] for k in POSITIONAL[op]]
    kw = {k: v for k, v in args.items() if k not in POSITIONAL[op]}
    return fn(*pos, **kw, **extra)


# ---------------------------------------------------------------------------------- mutations
def _idx(t):
    """Index of an interior element (vector lane 1 where possible)."""
    return min(1, t.numel() - 1)


def set_value(v):
    def mutate(t):
        t = t.clone()
        t.view(-1)[_idx(t)] = v
        return t

    return mutate


MUTATIONS: dict[str, Callable[[torch.Tensor], object]] = {
    "list": lambda t: t.tolist(),
    "numpy": lambda t: t.numpy(),
    "int64": lambda t: t.round().long(),
    "float16": lambda t: t.half(),
    "bool": lambda t: t > 0,
    "float32": lambda t: t.float(),
    "extra_dim": lambda t: t.unsqueeze(0).expand(2, *t.shape),
    "drop_dim": lambda t: t[0] if t.dim() else t,
    "shrink_last": lambda t: t[..., :-1] if t.dim() else t.reshape(1).repeat(3),
    "grow_last": lambda t: torch.cat([t, t[..., :1]], -1) if t.dim() else t.reshape(1).repeat(2),
    "empty": lambda t: t[:0] if t.dim() else t.reshape(1)[:0],
    "meta_one": lambda t: t.to("meta"),
    "nan": set_value(NAN),
    "+inf": set_value(INF),
    "-inf": set_value(-INF),
    "non_contiguous": lambda t: t.t().contiguous().t() if t.dim() == 2 else t.unsqueeze(-1).expand(*t.shape, 2)[..., 0],
}


# Per (op, argument): mutation -> expectation; "name" expectations default to the argument.
def _r(exc=(ValueError, TypeError), name=None):
    return ("raise", exc, name)


AGREE = ("agree",)
OK = ("runs",)
TENSOR_DEFAULTS = {
    "list": _r(TypeError),
    "numpy": _r(TypeError),
    "int64": _r(TypeError),
    "float16": _r(TypeError),
    "bool": _r(TypeError),
    "float32": _r(TypeError),
    "extra_dim": _r(ValueError),
    "drop_dim": _r(ValueError),
    "shrink_last": _r(ValueError),
    "grow_last": _r(ValueError),
    "empty": _r(ValueError),
    "meta_one": _r(ValueError),
    "nan": AGREE,
    "+inf": AGREE,
    "-inf": AGREE,
    "non_contiguous": AGREE,
}

TABLE: dict[tuple[str, str], dict] = {
    # ---- ei_rnn_scan: drive [B, T, N], x0 [B, N] | [N], w_rec [N, N], alpha [N] | [1] | scalar
    ("ei_rnn_scan", "drive"): dict(
        float32=_r(TypeError, "x0 has dtype torch.float64 but drive has torch.float32"),
        shrink_last=_r(ValueError, "x0 must be"),
        grow_last=_r(ValueError, "x0 must be"),
        drop_dim=_r(ValueError, "drive must be"),
        meta_one=_r(ValueError, "x0 is on cpu but drive is on meta"),
    ),
    ("ei_rnn_scan", "x0"): dict(drop_dim=AGREE, meta_one=_r(ValueError, "x0 is on meta")),
    ("ei_rnn_scan", "w_rec"): dict(drop_dim=_r(ValueError, "w_rec must be")),
    ("ei_rnn_scan", "alpha"): dict(
        list=_r(TypeError, "alpha must be a torch.Tensor or a float"),
        numpy=_r(TypeError, "alpha must be a torch.Tensor or a float"),
        drop_dim=AGREE,  # a scalar alpha is allowed
        empty=_r(ValueError, "alpha must be a scalar"),
    ),
    # ---- ei_rnn_rates: states [B, T, N], x0 [B, N] | [N], rate_scale / rate_baseline one value
    ("ei_rnn_rates", "states"): dict(
        list=_r(TypeError, "states must be a torch.Tensor"),
        float32=_r(TypeError, "x0 is torch.float64 on cpu but states are torch.float32"),
        int64=_r(TypeError, "states must be float32 or float64"),
        float16=_r(TypeError, "states must be float32 or float64"),
        bool=_r(TypeError, "states must be float32 or float64"),
        shrink_last=_r(ValueError, "x0 must be"),
        grow_last=_r(ValueError, "x0 must be"),
        meta_one=_r(TypeError, "but states are torch.float64 on meta"),
    ),
    ("ei_rnn_rates", "x0"): dict(
        drop_dim=AGREE,
        int64=_r(TypeError, "x0 is torch.int64"),
        float16=_r(TypeError, "x0 is torch.float16"),
        bool=_r(TypeError, "x0 is torch.bool"),
        float32=_r(TypeError, "x0 is torch.float32"),
        meta_one=_r(TypeError, "x0 is torch.float64 on meta"),
    ),
    **{
        ("ei_rnn_rates", k): dict(
            extra_dim=_r(ValueError, f"{k} must hold one value"),
            drop_dim=AGREE,
            shrink_last=_r(ValueError, f"{k} must hold one value"),
            grow_last=_r(ValueError, f"{k} must hold one value"),
            empty=_r(ValueError, f"{k} must hold one value"),
            int64=_r(TypeError, f"{k} is torch.int64"),
            float16=_r(TypeError, f"{k} is torch.float16"),
            bool=_r(TypeError, f"{k} is torch.bool"),
            float32=_r(TypeError, f"{k} is torch.float32"),
            meta_one=_r(TypeError, f"{k} is torch.float64 on meta"),
            non_contiguous=AGREE,
        )
        for k in ("rate_scale", "rate_baseline")
    },
    # ---- state_noise_: drive any shape, std one value (noise draws differ by design: no "agree")
    ("state_noise_", "drive"): dict(
        list=_r(TypeError, "drive must be a torch.Tensor"),
        numpy=_r(TypeError, "drive must be a torch.Tensor"),
        int64=_r(TypeError, "drive and std must share a float32/float64 dtype"),
        float16=_r(TypeError, "drive and std must share"),
        bool=_r(TypeError, "drive and std must share"),
        float32=_r(TypeError, "drive and std must share"),
        extra_dim=_r(ValueError, "drive is an expanded view"),  # in place: was torch's internal-overlap error
        drop_dim=OK,
        shrink_last=OK,
        grow_last=OK,
        empty=OK,
        meta_one=_r(ValueError, "std is on cpu but drive is on meta"),
        nan=OK,
        **{"+inf": OK, "-inf": OK},
        non_contiguous=OK,
    ),
    ("state_noise_", "std"): dict(
        list=_r(TypeError, "std must be a torch.Tensor"),
        numpy=_r(TypeError, "std must be a torch.Tensor"),
        int64=_r(TypeError, "drive and std must share"),
        float16=_r(TypeError, "drive and std must share"),
        bool=_r(TypeError, "drive and std must share"),
        float32=_r(TypeError, "drive and std must share"),
        extra_dim=_r(ValueError, "std must hold one value"),
        drop_dim=OK,
        shrink_last=_r(ValueError, "std must hold one value"),
        grow_last=_r(ValueError, "std must hold one value"),
        empty=_r(ValueError, "std must hold one value"),
        meta_one=_r(ValueError, "std is on meta but drive is on cpu"),
        nan=OK,
        **{"+inf": OK, "-inf": OK},
        non_contiguous=OK,
    ),
    # ---- edge_message_passing: edge_weight [E] (edge order), node_values [num_src, F] | [num_src]
    ("edge_message_passing", "edge_weight"): dict(
        int64=_r(TypeError, "edge_weight must be float32 or float64"),
        float16=_r(TypeError, "edge_weight must be float32 or float64"),
        bool=_r(TypeError, "edge_weight must be float32 or float64"),
        float32=_r(TypeError, "edge_weight has dtype torch.float32 but node_values has torch.float64"),
        drop_dim=_r(ValueError, r"edge_weight must be \[E\]"),
        meta_one=_r(ValueError, r"edge_weight \(meta\), node_values \(cpu\)"),
    ),
    ("edge_message_passing", "node_values"): dict(
        drop_dim=_r(ValueError, "node_values must be"),
        shrink_last=AGREE,  # any number of columns F
        grow_last=AGREE,
        float32=_r(TypeError, "edge_weight has dtype torch.float64 but node_values has torch.float32"),
        meta_one=_r(ValueError, r"edge_weight \(cpu\), node_values \(meta\)"),
    ),
    # ---- edge_mlp_message_passing
    ("edge_mlp_message_passing", "edge_weight"): dict(
        int64=_r(TypeError, "edge_weight must be float32 or float64"),
        float16=_r(TypeError, "edge_weight must be float32 or float64"),
        bool=_r(TypeError, "edge_weight must be float32 or float64"),
        float32=_r(TypeError, "edge_weight has dtype torch.float32 but a_dst has torch.float64"),
        drop_dim=_r(ValueError, r"edge_weight must be \[E\]"),
        meta_one=_r(ValueError, r"edge_weight \(meta\), a_dst \(cpu\)"),
    ),
    ("edge_mlp_message_passing", "a_dst"): dict(
        int64=_r(TypeError, "a_dst must be float32 or float64"),
        float16=_r(TypeError, "a_dst must be float32 or float64"),
        bool=_r(TypeError, "a_dst must be float32 or float64"),
        float32=_r(TypeError, "b_src has dtype torch.float64 but a_dst has torch.float32"),
        drop_dim=_r(ValueError, "b_src must be"),  # a_dst [num_dst, H] means one frame: b_src mismatches
        shrink_last=_r(ValueError, "b_src must be"),
        grow_last=_r(ValueError, "b_src must be"),
        empty=_r(ValueError, "b_src must be"),
        meta_one=_r(ValueError, "b_src is on cpu but a_dst is on meta"),
    ),
    ("edge_mlp_message_passing", "b_src"): dict(
        float32=_r(TypeError, "b_src has dtype torch.float32"),
        int64=_r(TypeError, "b_src has dtype torch.int64"),
        float16=_r(TypeError, "b_src has dtype torch.float16"),
        bool=_r(TypeError, "b_src has dtype torch.bool"),
        meta_one=_r(ValueError, "b_src is on meta"),
    ),
    ("edge_mlp_message_passing", "out_weight"): dict(
        drop_dim=_r(ValueError, "out_weight must be"),
        float32=_r(TypeError, "out_weight has dtype torch.float32"),
        int64=_r(TypeError, "out_weight has dtype torch.int64"),
        float16=_r(TypeError, "out_weight has dtype torch.float16"),
        bool=_r(TypeError, "out_weight has dtype torch.bool"),
        meta_one=_r(ValueError, "out_weight is on meta"),
    ),
    ("edge_mlp_message_passing", "out_bias"): dict(
        drop_dim=AGREE,  # a 0-d bias is one value
        extra_dim=_r(ValueError, "out_bias must hold one value"),
        grow_last=_r(ValueError, "out_bias must hold one value"),
        shrink_last=_r(ValueError, "out_bias must hold one value"),
        empty=_r(ValueError, "out_bias must hold one value"),
        float32=_r(TypeError, "out_bias has dtype torch.float32"),
        int64=_r(TypeError, "out_bias has dtype torch.int64"),
        float16=_r(TypeError, "out_bias has dtype torch.float16"),
        bool=_r(TypeError, "out_bias has dtype torch.bool"),
        meta_one=_r(ValueError, "out_bias is on meta"),
    ),
    # ---- sinkhorn / sinkhorn_plan: x [B, n, d], y [B, m, d], a [B, n] | [n]; NaN/inf: ValueError
    **{
        (op, "x"): dict(
            int64=_r(TypeError, "x must be float32 or float64"),
            float16=_r(TypeError, "x must be float32 or float64"),
            bool=_r(TypeError, "x must be float32 or float64"),
            float32=_r(TypeError, "y has dtype torch.float64 but x has torch.float32"),
            shrink_last=_r(ValueError, "same feature size d"),
            grow_last=_r(ValueError, "same feature size d"),
            empty=_r(ValueError, "same batch size B"),
            meta_one=_r(ValueError, "y is on cpu but x is on meta"),
            nan=_r(ValueError, "x contains NaN or inf"),
            **{"+inf": _r(ValueError, "x contains NaN or inf"), "-inf": _r(ValueError, "x contains NaN or inf")},
        )
        for op in ("sinkhorn", "sinkhorn_plan", "relative_eps")
    },
    **{
        (op, "y"): dict(
            int64=_r(TypeError, "y has dtype torch.int64"),
            float16=_r(TypeError, "y has dtype torch.float16"),
            bool=_r(TypeError, "y has dtype torch.bool"),
            float32=_r(TypeError, "y has dtype torch.float32"),
            shrink_last=_r(ValueError, "same feature size d"),
            grow_last=_r(ValueError, "same feature size d"),
            empty=_r(ValueError, "same batch size B"),
            meta_one=_r(ValueError, "y is on meta"),
            nan=_r(ValueError, "y contains NaN or inf"),
            **{"+inf": _r(ValueError, "y contains NaN or inf"), "-inf": _r(ValueError, "y contains NaN or inf")},
        )
        for op in ("sinkhorn", "sinkhorn_plan", "relative_eps")
    },
    **{
        (op, "a"): dict(
            int64=_r(TypeError, "a has dtype torch.int64"),
            float16=_r(TypeError, "a has dtype torch.float16"),
            bool=_r(TypeError, "a has dtype torch.bool"),
            float32=_r(TypeError, "a has dtype torch.float32"),
            drop_dim=AGREE,  # one [n] weight vector for every problem
            extra_dim=_r(ValueError, r"a must be \[B, 4\]"),
            shrink_last=_r(ValueError, r"a must be \[B, 4\]"),
            grow_last=_r(ValueError, r"a must be \[B, 4\]"),
            empty=_r(ValueError, r"a must be \[B, 4\]"),
            meta_one=_r(ValueError, "a is on meta"),
            nan=_r(ValueError, "a must hold finite, non-negative weights"),
            **{"+inf": _r(ValueError, "a must hold finite"), "-inf": _r(ValueError, "a must hold finite")},
        )
        for op in ("sinkhorn", "sinkhorn_plan")
    },
    # ---- EdgeGraph: src / dst [E] int32 | int64
    **{
        ("EdgeGraph", k): dict(
            list=_r(TypeError, f"{k} must be a torch.Tensor"),
            numpy=_r(TypeError, f"{k} must be a torch.Tensor"),
            int64=OK,
            float16=_r(TypeError, f"{k} must be an int32 or int64 tensor"),
            bool=_r(TypeError, f"{k} must be an int32 or int64 tensor"),
            float32=_r(TypeError, f"{k} must be an int32 or int64 tensor"),
            extra_dim=_r(ValueError, f"{k} must be 1-D"),
            drop_dim=_r(ValueError, f"{k} must be 1-D"),
            shrink_last=_r(ValueError, "src and dst must have the same length"),
            grow_last=_r(ValueError, "src and dst must have the same length"),
            empty=_r(ValueError, "src and dst must have the same length"),
            meta_one=_r(ValueError, f"{k} is on the meta device"),
            nan=None,  # integers hold no NaN: not a case
            non_contiguous=OK,
        )
        for k in ("src", "dst")
    },
}


def _tensor_arg_names(op):
    args = OPS[op][1]()
    names = [k for k, v in args.items() if isinstance(v, torch.Tensor)]
    return names


def _expectation(op, arg, mutation):
    spec = TABLE.get((op, arg), {})
    exp = spec.get(mutation, TENSOR_DEFAULTS[mutation])
    if op == "EdgeGraph" and mutation in ("nan", "+inf", "-inf"):
        return None
    if op in ("sinkhorn", "sinkhorn_plan", "relative_eps") and exp == AGREE and mutation == "non_contiguous":
        return AGREE
    return exp


def _cases():
    out = []
    for op in OPS:
        for arg in _tensor_arg_names(op):
            for mutation in MUTATIONS:
                exp = _expectation(op, arg, mutation)
                if exp is not None:
                    out.append(pytest.param(op, arg, mutation, exp, id=f"{op}-{arg}-{mutation}"))
    return out


def _grad_leaves(args):
    leaves = []
    for k, v in args.items():
        if k in ("a", "b"):  # sinkhorn's weights take no gradient (documented NotImplementedError)
            continue
        if isinstance(v, torch.Tensor) and v.is_floating_point() and v.device.type != "meta":
            leaves.append(k)
    return leaves


def _run_backend(op, args, backend):
    """Output (and gradients of every floating leaf) for one backend; NaN-tolerant."""
    args = {k: (v.detach().clone().requires_grad_() if k in _grad_leaves(args) else v) for k, v in args.items()}
    if op == "edge_mlp_message_passing":
        args["hidden_weights"] = [t.clone().requires_grad_() for t in args["hidden_weights"]]
        args["hidden_biases"] = [t.clone().requires_grad_() for t in args["hidden_biases"]]
    if op in ("ei_rnn_scan", "ei_rnn_rates", "edge_message_passing", "edge_mlp_message_passing"):
        out = call(op, args, backend=backend)
    elif op in ("sinkhorn", "sinkhorn_plan"):
        out = call(op, args, backend=backend, max_iter=300, tol=1e-9, on_nonconvergence="ignore")
    else:
        return [call(op, args)]
    leaves = [args[k] for k in _grad_leaves(args)]
    if op == "edge_mlp_message_passing":
        leaves += args["hidden_weights"] + args["hidden_biases"]
    if not out.requires_grad:
        return [out]
    cot = torch.randn(out.shape, dtype=out.dtype, generator=torch.Generator().manual_seed(9))
    return [out.detach(), *torch.autograd.grad(out, leaves, cot, allow_unused=True)]


def _same_nonfinite(f, r):
    if f is None or r is None:
        return f is None and r is None
    return (
        torch.equal(f.isnan(), r.isnan())
        and torch.equal(f.isposinf(), r.isposinf())
        and torch.equal(f.isneginf(), r.isneginf())
        and torch.allclose(f[torch.isfinite(r)], r[torch.isfinite(r)], rtol=1e-6, atol=1e-8)
    )


@pytest.mark.parametrize("op, arg, mutation, exp", _cases())
def test_tensor_argument(op, arg, mutation, exp):
    args = OPS[op][1]()
    args[arg] = MUTATIONS[mutation](args[arg])
    if exp[0] == "raise":
        _, exc, name = exp
        with pytest.raises(exc) as info:
            call(op, args)
        pattern = name or rf"\b{re.escape(arg)}\b"
        assert re.search(pattern, str(info.value)), f"message does not name {arg!r}: {info.value}"
        return
    if exp[0] == "runs":
        out = call(op, args)
        if op == "state_noise_":  # in place, shape kept
            assert out.data_ptr() == args["drive"].data_ptr() and out.shape == args["drive"].shape
        if op == "EdgeGraph":
            assert isinstance(out, EdgeGraph) and out.num_edges == 3
        return
    fused, ref = _run_backend(op, args, "fused"), _run_backend(op, args, "reference")
    assert len(fused) == len(ref)
    for k, (f, r) in enumerate(zip(fused, ref)):
        assert _same_nonfinite(f, r), (k, f, r)


# ---------------------------------------------------------------------------------- all on meta
META_DOCUMENTED = {
    # shape-only results from the reference (nothing is computed); backend="fused" has no meta kernel
    "ei_rnn_scan": lambda out: out.shape == (2, 3, 5) and out.device.type == "meta",
    "ei_rnn_rates": lambda out: out.shape == (2, 3, 5) and out.device.type == "meta",
    "state_noise_": lambda out: out.shape == (2, 3, 5) and out.device.type == "meta",
}
META_RAISES = {
    "sinkhorn": "x and y are on the meta device",
    "sinkhorn_plan": "x and y are on the meta device",
    "relative_eps": "x and y are on the meta device",
    "EdgeGraph": "src is on the meta device",
}


@pytest.mark.parametrize("op", list(META_DOCUMENTED) + list(META_RAISES))
def test_all_tensors_on_meta(op):
    args = {k: (v.to("meta") if isinstance(v, torch.Tensor) else v) for k, v in OPS[op][1]().items()}
    if op in META_RAISES:
        with pytest.raises(ValueError, match=META_RAISES[op]):
            call(op, args)
        return
    assert META_DOCUMENTED[op](call(op, args))
    with pytest.raises(RuntimeError, match="fused"):
        call(op, args, backend="fused")


def test_meta_node_values_with_a_cpu_graph_names_the_devices():
    with pytest.raises(ValueError, match="use graph.to"):
        edge_message_passing(GRAPH, torch.ones(6, device="meta"), torch.ones(4, 2, device="meta"))


# ---------------------------------------------------------------------------------- scalar arguments
def _scalar(op, **change):
    args = OPS[op][1]()
    extra = {k: v for k, v in change.items() if k not in args}
    args.update({k: v for k, v in change.items() if k in args})
    return lambda: call(op, args, **extra)


SCALAR_CASES = [
    # backend, everywhere
    *[(op, dict(backend=b), ValueError, "backend must be one of") for op in list(OPS)[:7] for b in ("gpu", "", None)],
    # ei_rnn_scan: a float alpha is allowed, other scalars are not
    ("ei_rnn_scan", dict(alpha=0.5), None, None),
    ("ei_rnn_scan", dict(alpha=True), TypeError, "alpha must be"),
    ("ei_rnn_scan", dict(alpha="0.5"), TypeError, "alpha must be"),
    ("ei_rnn_scan", dict(alpha=None), TypeError, "alpha must be"),
    # state_noise_ seeds: pybind's "incompatible function arguments" / "Overflow when unpacking" before
    *[
        ("state_noise_", dict(seed=s), exc, "seed must be an int in")
        for s, exc in [
            (-1, ValueError),
            (2**63, ValueError),
            (2**64, ValueError),
            (-(2**70), ValueError),
            (1.5, TypeError),
            (1.0, TypeError),
            ("7", TypeError),
            (True, TypeError),
            (torch.tensor(1.5), TypeError),
            ([1], TypeError),
        ]
    ],
    *[("state_noise_", dict(seed=s), None, None) for s in (0, 2**63 - 1, np.int64(5), torch.tensor(7))],
    # sinkhorn scalars
    *[
        (op, change, exc, match)
        for op in ("sinkhorn", "sinkhorn_plan")
        for change, exc, match in [
            (dict(eps=0.0), ValueError, "eps must be finite and > 0"),
            (dict(eps=-1.0), ValueError, "eps must be finite and > 0"),
            (dict(eps=NAN), ValueError, "eps must be finite and > 0"),
            (dict(eps=INF), ValueError, "eps must be finite and > 0"),
            (dict(eps=1e-320), ValueError, "eps must be >= .* smallest normal"),
            (dict(eps="0.1"), TypeError, "eps must be a float"),
            (dict(eps=None), TypeError, "eps must be a float"),
            (dict(eps=True), TypeError, "eps must be a float"),
            (dict(eps=torch.ones(3, dtype=F64)), ValueError, r"eps must be a scalar or have shape \[B\]"),
            (dict(eps=torch.tensor([0.5, NAN], dtype=F64)), ValueError, "eps must be finite"),
            (dict(eps=torch.tensor([0.5, 0.2], dtype=F64)), None, None),
            (dict(max_iter=-1), ValueError, "max_iter must be an int >= 0"),
            (dict(max_iter=2.0), ValueError, "max_iter must be an int >= 0"),
            (dict(max_iter=True), ValueError, "max_iter must be an int >= 0"),
            (dict(tol=-1e-6), ValueError, "tol must be a finite float >= 0"),
            (dict(tol=NAN), ValueError, "tol must be a finite float >= 0"),
            (dict(tol=INF), ValueError, "tol must be a finite float >= 0"),
            (dict(tol="1e-6"), ValueError, "tol must be a finite float >= 0"),
            (dict(eps_scaling=1.0), ValueError, "eps_scaling must be None or a decay factor"),
            (dict(eps_scaling=0.0), ValueError, "eps_scaling must be None or a decay factor"),
            (dict(eps_scaling=NAN), ValueError, "eps_scaling must be None or a decay factor"),
            (dict(cost="cosine"), ValueError, "cost must be one of"),
            (dict(cost=None), ValueError, "cost must be one of"),
            (dict(on_nonconvergence="loud"), ValueError, "on_nonconvergence must be one of"),
            (dict(on_nonconvergence=None), ValueError, "on_nonconvergence must be one of"),
            (dict(a=torch.zeros(2, 4, dtype=F64)), ValueError, "positive total weight"),
            (dict(a=-torch.ones(2, 4, dtype=F64)), ValueError, "a must hold finite, non-negative"),
            (dict(a=torch.ones(2, 4, dtype=F64) * 1e308), None, None),
            (dict(b=torch.ones(2, 5, dtype=F64, requires_grad=True)), NotImplementedError, "gradients w.r.t. b"),
            (dict(cost="poisson"), ValueError, "x holds negative rates"),
        ]
    ],
    ("sinkhorn", dict(debias="yes"), TypeError, "debias must be a bool"),
    ("relative_eps", dict(stat="max"), ValueError, "stat must be"),
    ("relative_eps", dict(scale=0.0), ValueError, "scale must be a float > 0"),
    ("relative_eps", dict(scale=-1.0), ValueError, "scale must be a float > 0"),
    # EdgeGraph counts and options
    *[
        ("EdgeGraph", change, exc, match)
        for change, exc, match in [
            (dict(num_src=-1), ValueError, "num_src must be >= 0"),
            (dict(num_dst=-3), ValueError, "num_dst must be >= 0"),
            (dict(num_src=2), ValueError, "src contains index 2 at edge 2, outside"),
            (dict(num_dst=1), ValueError, "dst contains index 1 at edge 0"),
            (dict(num_src=3.0), TypeError, "num_src must be an int"),
            (dict(num_dst="3"), TypeError, "num_dst must be an int"),
            (dict(num_dst=None), TypeError, "num_dst must be an int"),
            (dict(num_src=True), TypeError, "num_src must be an int"),
            (dict(num_dst=2**33), ValueError, "num_dst="),  # was "DefaultCPUAllocator: can't allocate memory"
            (dict(num_src=2**40), ValueError, "num_src="),
            (dict(num_src=torch.tensor(3)), None, None),
            (dict(num_src=np.int64(3)), TypeError, "num_src must be an int"),
            (dict(on_duplicate="drop"), ValueError, "on_duplicate must be"),
            (dict(src=torch.tensor([0, 1, -1])), ValueError, "src contains index -1 at edge 2"),
            (dict(dst=torch.tensor([0, 2**40, 1])), ValueError, "dst contains index 1099511627776 at edge 1"),
            (dict(src=torch.tensor([0, 0, 0]), dst=torch.tensor([1, 1, 1])), None, None),  # duplicates warn
        ]
    ],
]


def _sid(case):
    op, change, exc, _ = case
    key = ",".join(f"{k}={v!r}"[:28] for k, v in change.items())
    return f"{op}-{key}-{'ok' if exc is None else exc.__name__}"


@pytest.mark.parametrize("case", SCALAR_CASES, ids=[_sid(c) for c in SCALAR_CASES])
def test_scalar_argument(case):
    op, change, exc, match = case
    fn = _scalar(op, **change)
    if exc is None:
        out = fn()
        if isinstance(out, torch.Tensor) and out.is_floating_point() and out.device.type != "meta":
            assert torch.isfinite(out).all()
        return
    with pytest.raises(exc, match=match):
        fn()


# ---------------------------------------------------------------------------------- graph misuse
def test_graph_on_another_device_or_of_another_shape():
    other = EdgeGraph(torch.tensor([0, 1]), torch.tensor([1, 0]), 2, 2)
    with pytest.raises(ValueError, match=r"edge_weight must be \[E\] = \[2\]"):
        edge_message_passing(other, torch.ones(6, dtype=F64), torch.ones(2, 2, dtype=F64))
    with pytest.raises(ValueError, match=r"node_values must be \[num_src, F\].*num_src=2"):
        edge_message_passing(other, torch.ones(2, dtype=F64), torch.ones(4, 2, dtype=F64))
    with pytest.raises(TypeError, match="graph must be an eirnn_fast.ops.EdgeGraph"):
        edge_message_passing(None, torch.ones(2, dtype=F64), torch.ones(2, 2, dtype=F64))
    with pytest.raises(TypeError, match="graph must be an eirnn_fast.ops.EdgeGraph"):
        edge_mlp_message_passing((0, 1), *list(mlp_args().values())[1:])


# ---------------------------------------------------------------------------------- edge-MLP lists
@pytest.mark.parametrize(
    "change, exc, match",
    [
        (dict(hidden_weights=[]), ValueError, "hidden_weights and hidden_biases must have the same length"),
        (dict(hidden_biases=[]), ValueError, "same length"),
        (dict(hidden_weights=[torch.ones(3, 4, dtype=F64)]), ValueError, r"hidden_weights\[0\] must be \[H, H\]"),
        (dict(hidden_biases=[torch.ones(5, dtype=F64)]), ValueError, r"hidden_biases\[0\] must be \[H\]"),
        (dict(hidden_weights=[[[0.0] * 4] * 4]), TypeError, r"hidden_weights\[0\] must be a torch.Tensor"),
        (dict(hidden_biases=[torch.ones(4)]), TypeError, r"hidden_biases\[0\] has dtype torch.float32"),
        (
            dict(hidden_weights=[torch.ones(4, 4, dtype=F64, device="meta")]),
            ValueError,
            r"hidden_weights\[0\] is on meta",
        ),
        (dict(hidden_weights=[], hidden_biases=[]), None, None),  # L = 0 layers
        (dict(out_bias=None), None, None),
        (dict(out_weight=torch.ones(1, 4, dtype=F64)), None, None),
    ],
)
def test_mlp_layer_lists(change, exc, match):
    args = mlp_args()
    args.update(change)
    if exc is None:
        ref = call("edge_mlp_message_passing", args, backend="reference")
        fused = call("edge_mlp_message_passing", args, backend="fused")
        assert torch.allclose(fused, ref, rtol=1e-10, atol=1e-12)
        return
    with pytest.raises(exc, match=match):
        call("edge_mlp_message_passing", args)


# ---------------------------------------------------------------------------------- zero / negative sizes
@pytest.mark.parametrize(
    "op, shapes, exc, match",
    [
        ("ei_rnn_scan", dict(drive=(0, 3, 5), x0=(0, 5)), ValueError, "drive must have B, T, N >= 1"),
        ("ei_rnn_scan", dict(drive=(2, 0, 5)), ValueError, "drive must have B, T, N >= 1"),
        ("ei_rnn_scan", dict(drive=(2, 3, 0), x0=(2, 0), w_rec=(0, 0), alpha=(0,)), ValueError, "B, T, N >= 1"),
        ("ei_rnn_rates", dict(states=(2, 0, 5)), ValueError, "states must be"),
        ("ei_rnn_rates", dict(states=(0, 3, 5), x0=(0, 5)), ValueError, "states must be"),
        ("state_noise_", dict(drive=(0, 3, 5)), None, None),  # nothing to draw: a no-op
        ("sinkhorn", dict(x=(2, 0, 3)), ValueError, "x and y need B, n, m, d >= 1"),
        ("sinkhorn", dict(y=(2, 0, 3)), ValueError, "x and y need B, n, m, d >= 1"),
        ("sinkhorn", dict(x=(0, 4, 3), y=(0, 5, 3), a=(0, 4)), ValueError, "x and y need B, n, m, d >= 1"),
        ("sinkhorn", dict(x=(2, 4, 0), y=(2, 5, 0)), ValueError, "x and y need B, n, m, d >= 1"),
        ("edge_message_passing", dict(node_values=(4, 0)), None, None),  # F = 0 columns
    ],
)
def test_zero_sizes(op, shapes, exc, match):
    args = OPS[op][1]()
    for k, shape in shapes.items():
        args[k] = torch.zeros(shape, dtype=F64)
    if exc is None:
        out = call(op, args)
        assert out.numel() == 0 or torch.isfinite(out).all()
        return
    with pytest.raises(exc, match=match):
        call(op, args)


def test_empty_graph_and_isolated_nodes_run():
    g = EdgeGraph(torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long), 3, 2)
    for backend in ("fused", "reference"):
        out = edge_message_passing(g, torch.zeros(0, dtype=F64), torch.ones(3, 2, dtype=F64), backend=backend)
        assert out.shape == (2, 2) and bool((out == 0).all())


# ---------------------------------------------------------------------------------- FlyVis entry points
@pytest.fixture(scope="module")
def connectome():
    from eirnn_fast.flyvis import load_connectome

    return load_connectome(1)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(spectral_radius=0.0), "spectral_radius must be finite and > 0"),
        (dict(spectral_radius=-1.0), "spectral_radius must be finite and > 0"),
        (dict(spectral_radius=NAN), "spectral_radius must be finite and > 0"),
        (dict(target_median_abs_w=-1.0), "target_median_abs_w must be finite and > 0"),
        (dict(target_median_abs_w=0.0), "target_median_abs_w must be finite and > 0"),
        (dict(excitatory_radius=INF), "excitatory_radius must be finite"),
        (dict(frac_zero_pairs=1.5), "frac_zero_pairs must be finite and >= 0 and <= 1"),
        (dict(frac_weak_pairs=-0.1), "frac_weak_pairs must be"),
        (dict(gain_sigma=-1.0), "gain_sigma must be"),
        (dict(calibration_extent=0), "calibration_extent must be None or an int >= 1"),
        (dict(seed=-1), "seed must be an int >= 0"),
        (dict(seed=1.5), "seed must be an int >= 0"),
    ],
)
def test_sample_parameters_rejects_bad_arguments(connectome, kwargs, match):
    from eirnn_fast.flyvis import sample_parameters

    seed = kwargs.pop("seed", 0)
    with pytest.raises((ValueError, TypeError), match=match):
        sample_parameters(connectome, seed, **kwargs)


def test_simulate_with_zero_frames_names_the_stimulus(connectome):
    from eirnn_fast.flyvis import sample_parameters, simulate

    params = sample_parameters(connectome, 0)
    for stim in (torch.zeros(0, connectome.n_neurons), torch.zeros(2, 0, connectome.n_neurons)):
        with pytest.raises(ValueError, match="stimulus has T = 0 frames"):
            simulate(connectome, params, stim)


def test_case_count():
    """The tables above generate a few hundred cases (kept here so a shrinking table is noticed)."""
    n = len(_cases()) + len(SCALAR_CASES) + len(META_DOCUMENTED) + len(META_RAISES)
    assert n >= 300, n
    assert not math.isnan(n)
