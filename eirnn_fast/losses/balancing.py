"""Gradient balancing between the data losses (L_neuron, L_trial, ...).

The predecessor used two incompatible schemes under one name, and Sourmpis et al. a third; all three
are here, selected by ``mode``:

* ``"none"``: ``sum_k w_k L_k + extra``; one backward pass.
* ``"param_norm"`` (the predecessor's 0.3614 run, ``experiment_ltrial_v2.py``): each balanced loss's
  gradient w.r.t. the parameters is divided by its own global norm,
  ``g = sum_k w_k grad L_k / (||grad L_k|| + eps) + grad extra``; one backward per balanced loss
  (plus one for ``extra``). The predecessor's weights were 1 (L_neuron) and 0.5 (L_trial).
* ``"loss_ema"`` (Phase 2 of the seeds, ``EIRNNLoss``): ``sum_k w_k L_k / EMA_k + extra`` where
  ``EMA_k`` is an exponential moving average (decay ``loss_ema_decay`` = 0.99) of the detached loss
  value: a slow re-weighting of the losses, not of their gradients. ``loss_ema_init=None`` (ours)
  starts it at the first value; a number starts it there and the first value is already averaged in
  (the predecessor: 1.0, updated before the division, ``experiment_phase2.py`` l. 153 and 222-230).
  ``backward(..., update_loss_ema=False)`` divides by the EMA without updating it (the trainer's
  per-epoch updates).
* ``"activity_ema"`` (Sourmpis/Bellec ``loss_splitter``, EnCodec ``Balancer``): each balanced loss
  is computed on its own *tap* of the activity tensor (``balancer.tap(name, rates)``), an identity
  in the forward pass whose backward divides the incoming gradient by ``sqrt`` of the bias-corrected
  EMA (decay ``activity_ema_decay`` = 0.999) of its squared norm and multiplies by ``w_k``; then one
  backward pass of ``sum_k L_k + extra``.

The balancer is an ``nn.Module`` whose EMAs are buffers, so they are saved in checkpoints and
training resumes exactly. Weights are set per step with :meth:`GradientBalancer.set_weights`
(curriculum ramps); a loss with weight 0 contributes nothing and costs no backward pass.
"""

from __future__ import annotations

from typing import Dict, Iterable, Mapping, Optional, Sequence

import torch
import torch.nn as nn

BALANCE_MODES = ("none", "param_norm", "loss_ema", "activity_ema")


class _NormalizeGrad(torch.autograd.Function):
    """Identity forward; backward: ``weight * g / sqrt(EMA(||g||^2) / (1 - decay^count))``."""

    @staticmethod
    def forward(ctx, x, balancer, name):
        ctx.balancer = balancer
        ctx.name = name
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        scale = ctx.balancer._activity_scale(ctx.name, grad)
        return grad * scale, None, None


class GradientBalancer(nn.Module):
    def __init__(
        self,
        names: Sequence[str] = ("neuron", "trial"),
        mode: str = "none",
        weights: Optional[Mapping[str, float]] = None,
        loss_ema_decay: float = 0.99,
        activity_ema_decay: float = 0.999,
        eps: float = 1e-8,
        loss_ema_init: Optional[float] = None,
    ):
        super().__init__()
        if mode not in BALANCE_MODES:
            raise ValueError(f"mode must be one of {BALANCE_MODES}, got {mode!r}")
        if loss_ema_init is not None and not float(loss_ema_init) > 0:
            raise ValueError(f"loss_ema_init must be None or > 0, got {loss_ema_init!r}")
        self.loss_ema_init = None if loss_ema_init is None else float(loss_ema_init)
        self.mode = mode
        self.names = tuple(names)
        self.loss_ema_decay = float(loss_ema_decay)
        self.activity_ema_decay = float(activity_ema_decay)
        self.eps = float(eps)
        self.weights: Dict[str, float] = {n: 1.0 for n in self.names}
        if weights:
            self.set_weights(weights)
        for n in self.names:
            self.register_buffer(f"loss_ema_{n}", torch.zeros((), dtype=torch.float64))
            self.register_buffer(f"loss_count_{n}", torch.zeros((), dtype=torch.long))
            self.register_buffer(f"grad_ema_{n}", torch.zeros((), dtype=torch.float64))
            self.register_buffer(f"grad_count_{n}", torch.zeros((), dtype=torch.long))
        self.last_stats: Dict[str, float] = {}

    def set_weights(self, weights: Mapping[str, float]) -> None:
        for name, w in weights.items():
            if name not in self.names:
                raise KeyError(f"unknown loss {name!r}; balancer knows {self.names}")
            self.weights[name] = float(w)

    # ------------------------------------------------------------------ activity_ema
    def tap(self, name: str, activity: torch.Tensor) -> torch.Tensor:
        """The activity tensor as seen by loss ``name`` (identity unless ``mode == "activity_ema"``)."""
        if self.mode != "activity_ema" or not activity.requires_grad:
            return activity
        if name not in self.names:
            raise KeyError(f"unknown loss {name!r}; balancer knows {self.names}")
        return _NormalizeGrad.apply(activity, self, name)

    def _activity_scale(self, name: str, grad: torch.Tensor) -> float:
        ema = getattr(self, f"grad_ema_{name}")
        count = getattr(self, f"grad_count_{name}")
        d = self.activity_ema_decay
        sq = float(grad.detach().double().pow(2).sum())
        ema.mul_(d).add_((1.0 - d) * sq)
        count.add_(1)
        hat = float(ema) / (1.0 - d ** int(count))
        self.last_stats[f"grad_norm_{name}"] = sq**0.5
        return self.weights[name] / (hat**0.5 + self.eps)

    # ------------------------------------------------------------------ loss_ema
    def _loss_ema(self, name: str, value: torch.Tensor, update: bool = True) -> float:
        ema = getattr(self, f"loss_ema_{name}")
        count = getattr(self, f"loss_count_{name}")
        if int(count) == 0 and self.loss_ema_init is not None:
            ema.fill_(self.loss_ema_init)
            count.add_(1)  # the initial value counts as the first average; this value is the next
            update = True
        elif int(count) == 0:
            ema.fill_(float(value.detach()))
            count.add_(1)
            return float(ema)
        if update:
            v = float(value.detach())
            ema.mul_(self.loss_ema_decay).add_((1.0 - self.loss_ema_decay) * v)
            count.add_(1)
        return float(ema)

    # ------------------------------------------------------------------ backward
    def backward(
        self,
        losses: Mapping[str, torch.Tensor],
        extra: Optional[torch.Tensor] = None,
        params: Optional[Iterable[torch.Tensor]] = None,
        update_loss_ema: bool = True,
    ) -> Dict[str, float]:
        """Accumulate the balanced gradient into ``.grad`` of ``params`` (all leaf tensors reached,
        for modes other than ``param_norm``). ``losses``: the balanced losses by name (computed on
        :meth:`tap` views for ``activity_ema``); ``extra``: unbalanced terms (regularisers, already
        weighted); ``update_loss_ema``: fold this step's values into the ``loss_ema`` averages (the
        first step always does). Returns per-loss statistics (gradient norms, EMAs) for logging."""
        active = {n: l for n, l in losses.items() if l is not None and self.weights.get(n, 0.0) != 0.0}
        for n in losses:
            if n not in self.names:
                raise KeyError(f"unknown loss {n!r}; balancer knows {self.names}")
        stats: Dict[str, float] = {}
        if self.mode == "param_norm":
            if params is None:
                raise ValueError("param_norm balancing needs the parameter list")
            params = [p for p in params if p.requires_grad]
            combined = [torch.zeros_like(p) for p in params]
            names = list(active)
            for i, n in enumerate(names):
                keep = i < len(names) - 1 or extra is not None
                grads = torch.autograd.grad(active[n], params, retain_graph=keep, allow_unused=True)
                norm = torch.sqrt(
                    sum((g.double().pow(2).sum() for g in grads if g is not None), torch.zeros((), dtype=torch.float64))
                )
                stats[f"grad_norm_{n}"] = float(norm)
                scale = self.weights[n] / (float(norm) + self.eps)
                for c, g in zip(combined, grads):
                    if g is not None:
                        c.add_(g, alpha=scale)
            if extra is not None and extra.requires_grad:
                grads = torch.autograd.grad(extra, params, allow_unused=True)
                for c, g in zip(combined, grads):
                    if g is not None:
                        c.add_(g)
            for p, c in zip(params, combined):
                p.grad = c if p.grad is None else p.grad + c
            return stats
        total = None
        for n, loss in active.items():
            if self.mode == "loss_ema":
                ema = self._loss_ema(n, loss, update_loss_ema)
                stats[f"loss_ema_{n}"] = ema
                term = loss * (self.weights[n] / (ema + self.eps))
            elif self.mode == "activity_ema":
                term = loss  # weight and normalisation are applied inside the tap's backward
            else:
                term = loss * self.weights[n]
            total = term if total is None else total + term
        if extra is not None:
            total = extra if total is None else total + extra
        if total is not None and total.requires_grad:
            total.backward()
        stats.update({k: v for k, v in self.last_stats.items()})
        self.last_stats = {}
        return stats
