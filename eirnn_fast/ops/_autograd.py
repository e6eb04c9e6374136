"""Autograd helpers shared by the fused ops."""

from __future__ import annotations

import functools

import torch


def first_order_only(op: str):
    """Decorator for a fused ``backward``: raise a clear error when autograd asks for a graph of
    the backward (``create_graph=True``: double backward, gradient penalties, Hessian products).

    The fused backward kernels are not differentiable. torch's ``once_differentiable`` only
    raises if a second backward happens to pass through its error node; when the second-order
    path runs through the saved tensors instead (the scan's states, the graph weights), that path
    is silently missing: ``torch.autograd.grad(...)`` returned None for the inputs or failed with
    "element 0 of tensors does not require grad". This refuses up front, naming the op and the fix.
    """

    def decorate(backward):
        @functools.wraps(backward)
        def wrapper(ctx, *grads):
            if torch.is_grad_enabled():  # autograd runs backward under grad mode only for create_graph
                raise RuntimeError(
                    f"double backward is not supported by the fused op {op} (its backward kernel is not "
                    "differentiable): use backend='reference' for higher-order gradients "
                    "(create_graph=True)"
                )
            with torch.no_grad():
                return backward(ctx, *grads)

        return wrapper

    return decorate
