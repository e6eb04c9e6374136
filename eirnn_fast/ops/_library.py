"""The registered operators ``torch.ops.eirnn_fast.*``: fake (meta) kernels and autograd formulas.

The schemas and the CPU / CUDA implementations are registered in C++ (``csrc/registry/``) when
``eirnn_fast._C`` is loaded; this module adds what ``torch.compile`` and ``torch.export`` need
from Python: a fake kernel per op (shapes, dtypes, devices without data) and the autograd formula
of every forward op, whose backward calls the matching ``*_bwd`` op (the backward ops are not
differentiable: asking for a graph of the backward, ``create_graph=True``, raises naming the op).

A gradient that was not requested comes back from a ``*_bwd`` op as an empty ``[0]`` tensor (a
schema output cannot be undefined); the formulas here return ``None`` for it.

Only the wrappers in ``eirnn_fast.ops`` validate arguments; the raw ops check shapes, dtypes and
devices (``RuntimeError``). The edge ops' CPU kernels also check the CSR arrays' contents as they
read them (row spans, ``col``, ``perm`` and the ``*_t`` arrays) and raise a ``ValueError`` naming the
op and the array; the CUDA kernels skip out-of-range entries without reporting them, so on CUDA
pass the arrays of a validated :class:`~eirnn_fast.ops.EdgeGraph`.
"""

from __future__ import annotations

import torch

from eirnn_fast import _ext

#: Every registered op (forward and backward), by name in ``torch.ops.eirnn_fast``.
OP_NAMES = (
    "ei_rnn_scan_fwd",
    "ei_rnn_scan_bwd",
    "ei_rates_fwd",
    "ei_rates_bwd",
    "noise_add_",
    "noise_dot",
    "edge_spmm_fwd",
    "edge_spmm_bwd",
    "edge_mlp_fwd",
    "edge_mlp_bwd",
    "sinkhorn_solve",
    "sinkhorn_plan",
)


def registered() -> bool:
    """Whether the operator library is loaded (the compiled module imported)."""
    return _ext.compiled() and hasattr(torch.ops.eirnn_fast, "ei_rnn_scan_fwd")


def op(name: str):
    """``torch.ops.eirnn_fast.<name>`` (the default overload)."""
    return getattr(torch.ops.eirnn_fast, name).default


def _first_order_only(name: str) -> None:
    # autograd runs a backward formula under grad mode only for create_graph=True; compiled
    # graphs trace the backward themselves (the check is for eager double backward)
    if torch.is_grad_enabled() and not torch.compiler.is_compiling():
        raise RuntimeError(
            f"double backward is not supported by the fused op {name} (its backward kernel is not "
            "differentiable): use backend='reference' for higher-order gradients (create_graph=True)"
        )


def _or_none(t: torch.Tensor, need: bool):
    return t if need else None


def _empty0(like: torch.Tensor) -> torch.Tensor:
    return like.new_empty(0)


def _register() -> None:
    lib = "eirnn_fast::"
    fake = torch.library.register_fake
    autograd = torch.library.register_autograd

    # ---- rnn ------------------------------------------------------------------------------
    @fake(lib + "ei_rnn_scan_fwd")
    def _(drive, x0, w, alpha):
        return torch.empty_like(drive, memory_format=torch.contiguous_format)

    @fake(lib + "ei_rnn_scan_bwd")
    def _(grad, x0, w, alpha, states, need_w, need_alpha):
        d_w = torch.empty_like(w, memory_format=torch.contiguous_format) if need_w else _empty0(states)
        d_alpha = torch.empty_like(alpha, memory_format=torch.contiguous_format) if need_alpha else _empty0(states)
        return (
            torch.empty_like(states, memory_format=torch.contiguous_format),
            torch.empty_like(x0, memory_format=torch.contiguous_format),
            d_w,
            d_alpha,
        )

    def scan_setup(ctx, inputs, output):
        _, x0, w, alpha = inputs
        ctx.save_for_backward(x0, w, alpha, output)

    def scan_backward(ctx, grad):
        _first_order_only("ei_rnn_scan")
        x0, w, alpha, states = ctx.saved_tensors
        need = ctx.needs_input_grad
        d_drive, d_x0, d_w, d_alpha = op("ei_rnn_scan_bwd")(
            grad.contiguous(), x0, w, alpha, states, bool(need[2]), bool(need[3])
        )
        return _or_none(d_drive, need[0]), _or_none(d_x0, need[1]), _or_none(d_w, need[2]), _or_none(d_alpha, need[3])

    autograd(lib + "ei_rnn_scan_fwd", scan_backward, setup_context=scan_setup)

    @fake(lib + "ei_rates_fwd")
    def _(states, x0, scale, base):
        return torch.empty_like(states, memory_format=torch.contiguous_format)

    @fake(lib + "ei_rates_bwd")
    def _(grad, states, x0, scale, base):
        return (
            torch.empty_like(states, memory_format=torch.contiguous_format),
            torch.empty_like(x0, memory_format=torch.contiguous_format),
            states.new_empty(()),
            states.new_empty(()),
        )

    def rates_setup(ctx, inputs, output):
        ctx.save_for_backward(*inputs)

    def rates_backward(ctx, grad):
        _first_order_only("ei_rnn_rates")
        states, x0, scale, base = ctx.saved_tensors
        need = ctx.needs_input_grad
        d_states, d_x0, d_scale, d_base = op("ei_rates_bwd")(grad.contiguous(), states, x0, scale, base)
        return (
            _or_none(d_states, need[0]),
            _or_none(d_x0, need[1]),
            _or_none(d_scale.reshape(scale.shape), need[2]),
            _or_none(d_base.reshape(base.shape), need[3]),
        )

    autograd(lib + "ei_rates_fwd", rates_backward, setup_context=rates_setup)

    @fake(lib + "noise_add_")
    def _(drive, std, seed):
        return None

    @fake(lib + "noise_dot")
    def _(grad, seed):
        return grad.new_empty(())

    # ---- message passing ------------------------------------------------------------------
    @fake(lib + "edge_spmm_fwd")
    def _(rowptr, col, perm, rowptr_t, col_t, perm_t, weight, x):
        return x.new_empty(rowptr.shape[0] - 1, x.shape[1])

    @fake(lib + "edge_spmm_bwd")
    def _(rowptr, col, perm, rowptr_t, col_t, perm_t, weight, x, grad, need_weight, need_x):
        return (
            weight.new_empty(col.shape[0]) if need_weight else _empty0(weight),
            x.new_empty(x.shape[0], x.shape[1]) if need_x else _empty0(weight),
        )

    def spmm_setup(ctx, inputs, output):
        ctx.save_for_backward(*inputs)

    def spmm_backward(ctx, grad):
        _first_order_only("edge_message_passing")
        *csr, weight, x = ctx.saved_tensors
        need_w, need_x = bool(ctx.needs_input_grad[6]), bool(ctx.needs_input_grad[7])
        d_w, d_x = op("edge_spmm_bwd")(*csr, weight, x, grad.contiguous(), need_w, need_x)
        return (None,) * 6 + (_or_none(d_w, need_w), _or_none(d_x, need_x))

    autograd(lib + "edge_spmm_fwd", spmm_backward, setup_context=spmm_setup)

    @fake(lib + "edge_mlp_fwd")
    def _(rowptr, col, perm, rowptr_t, col_t, perm_t, weight, a, b, hw, hb, ow, ob):
        return weight.new_empty(a.shape[1], a.shape[0])

    @fake(lib + "edge_mlp_bwd")
    def _(rowptr, col, perm, rowptr_t, col_t, perm_t, weight, a, b, hw, hb, ow, ob, grad, nw, na, nb, np_):
        like = [(weight, nw), (a, na), (b, nb), (hw, np_), (hb, np_), (ow, np_), (ob, np_)]
        return tuple(
            torch.empty_like(t, memory_format=torch.contiguous_format) if n else _empty0(weight) for t, n in like
        )

    def mlp_setup(ctx, inputs, output):
        ctx.save_for_backward(*inputs)

    def mlp_backward(ctx, grad):
        _first_order_only("edge_mlp_message_passing")
        saved = ctx.saved_tensors
        need = [bool(n) for n in ctx.needs_input_grad[6:13]]
        grads = op("edge_mlp_bwd")(*saved, grad.contiguous(), need[0], need[1], need[2], any(need[3:]))
        return (None,) * 6 + tuple(_or_none(t, n) for t, n in zip(grads, need))

    autograd(lib + "edge_mlp_fwd", mlp_backward, setup_context=mlp_setup)

    # ---- sinkhorn -------------------------------------------------------------------------
    @fake(lib + "sinkhorn_solve")
    def _(C, log_a, log_b, eps, eps0, decay, max_iter, tol):
        B, n, m = C.shape
        return (
            C.new_empty(B, n),
            C.new_empty(B, m),
            C.new_empty(B),
            C.new_empty(B, dtype=torch.int64),
            C.new_empty(B),
        )

    @fake(lib + "sinkhorn_plan")
    def _(C, log_a, log_b, g, eps):
        return C.new_empty(C.shape)

    def solve_setup(ctx, inputs, output):
        C, log_a, log_b, eps = inputs[0], inputs[1], inputs[2], inputs[3]
        _, g, _, _, _ = output
        ctx.save_for_backward(C, log_a, log_b, g, eps)

    def solve_backward(ctx, d_f, d_g, d_value, d_iters, d_err):
        # envelope theorem: d value / d C = P* (the plan from the saved potentials); f, g, iters
        # and err are not differentiated (their gradients must be zero or absent)
        _first_order_only("sinkhorn")
        C, log_a, log_b, g, eps = ctx.saved_tensors
        d_C = None
        if ctx.needs_input_grad[0] and d_value is not None:
            d_C = op("sinkhorn_plan")(C, log_a, log_b, g, eps) * d_value.view(-1, 1, 1)
        return (d_C,) + (None,) * 7

    autograd(lib + "sinkhorn_solve", solve_backward, setup_context=solve_setup)


if registered():
    _register()
