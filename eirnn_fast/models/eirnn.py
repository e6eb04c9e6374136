"""Drop-in Dale's-law E-I rate RNN (``EIRNN``) whose recurrence runs in :func:`eirnn_fast.ops.ei_rnn_scan`.

Same constructor, forward, methods and state_dict names as the predecessor's ``src/model.py::EIRNN``
(``jamespherman/4factors-rnn-analysis@6fa65af``), so its checkpoints load with ``strict=True`` and
give the same rates. Dynamics (units 0..n_exc-1 excitatory, dt in ms, one step per time bin)::

    u        = embed(inputs)                                                   [B, T, D]
    x_{-1}   = initial_state | h0 | 0
    x_t      = (1 - a) x_{t-1} + a (softplus(x_{t-1}) W_rec^T + u_t W_in^T) + s sqrt(mean a) xi_t
    rates_t  = max(softplus(x_{t-1}) * rate_scale + rate_baseline, 0)   (one-step lag: rates_0 from x_{-1})
    out_t    = rates_t[:, :n_exc] W_out^T + b_out
    states_t = x_t

``a`` is the leak ``dt / tau`` (scalar or per unit), ``s`` = ``noise_scale`` and ``xi ~ N(0, 1)``.
The recurrence feeds back the unscaled ``softplus``; ``rate_scale``/``rate_baseline`` only shape the
reported rates. Everything except the recurrence is one batched op over all time bins.
"""

from __future__ import annotations

import logging
import warnings
from typing import Optional, Sequence, Union

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from eirnn_fast._ext import BACKENDS
from eirnn_fast.models import parametrize as P
from eirnn_fast.models.embeddings import ALWAYS_ON_TYPES, EMBED_TYPES, make_input_embedding
from eirnn_fast.ops import _backend, ei_rnn_rates, ei_rnn_scan, state_noise_
from eirnn_fast.units import _check_real, ei_unit_counts
from eirnn_fast.units import recorded_unit_index as recorded_unit_index  # re-exported: public API
from eirnn_fast.units import select_units as select_units  # re-exported: public API

logger = logging.getLogger(__name__)

LEARNABLE_TAU_MODES = ("none", "population", "neuron")
LEARNABLE_ALPHA_MODES = ("none", "scalar", "population", "neuron")
#: How noise is drawn: ``per_step`` = one ``randn(B, N)`` per time bin, the predecessor's RNG stream
#: (same seed, same noise); ``batched`` = one ``randn`` for the whole ``[B, T, N]`` (one launch on
#: GPU, different numbers); ``counter`` = counter-based draws added inside the extension
#: (:func:`eirnn_fast.ops.state_noise_`: no ``[B, T, N]`` noise tensor, ~3x faster than ``randn`` on
#: CPU; ``batched`` where the fused CPU kernels are not used and under ``torch.compile``, whose
#: graph cannot read the draws' seed back); ``auto`` (the default) = ``counter``
#: (same standard-normal statistics, other numbers than the predecessor's; ``per_step`` keeps its
#: exact stream).
NOISE_DRAWS = ("auto", "per_step", "batched", "counter")


def _check_choice(name: str, value, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {tuple(allowed)}, got {value!r}")


class EIRNN(nn.Module):
    """Excitatory-inhibitory rate RNN with Dale's law (drop-in for the predecessor's ``EIRNN``).

    Args (predecessor's order and defaults):
        n_exc, n_inh: excitatory (units ``0..n_exc-1``) and inhibitory unit counts.
        n_inputs: width of the task inputs (14 for the SC sessions).
        n_outputs: readout width (2: eye x, y), read from E units only.
        tau, dt: fixed time constant and step (ms); fixed leak ``alpha = dt / tau``.
        noise_scale: std of the state noise per unit sqrt-time; added in train *and* eval mode as
            the predecessor did. ``model.noise_scale = 0`` or ``forward(..., noise=False)`` turns it off.
        spectral_radius: of the initial ``W_rec``.
        bypass_dale: no sign constraint (``W = W_raw * diag_mask``).
        learnable_tau: ``'none'`` | ``'population'`` (tau_e, tau_i) | ``'neuron'``;
            ``tau = TAU_MIN + softplus(raw) * (TAU_MAX - TAU_MIN) / 2`` with ``TAU_MIN = 25`` ms.
        tau_e_init, tau_i_init: initial learnable taus (ms).
        learnable_alpha: ``'none'`` | ``'scalar'`` | ``'population'`` | ``'neuron'``; ``alpha = sigmoid(logit)``.
            Exclusive with ``learnable_tau``.
        alpha_init, alpha_e_init, alpha_i_init: initial alphas; ``alpha_e_init`` defaults to
            ``alpha_init`` and ``alpha_i_init`` to ``min(0.95, 1.5 * alpha_init)`` (scalar mode uses
            ``alpha_e_init``).
        low_rank: rank r of ``W_rec = |U V^T| * sign * diag`` (parameters ``U``, ``V`` ``[N, r]``).
        input_embed_dim, input_embed_type, input_time_lags, embed_hidden_dim, embed_n_layers,
            input_groups, group_embed_dims, gru_hidden_dim, attention_heads: input embedding (see
            :mod:`eirnn_fast.models.embeddings`). ``learnable``/``random`` are used only when
            ``input_embed_dim`` is given; the other types always.
        learnable_h0, h0_init: trainable initial state ``h0`` ``[N]`` (constant ``h0_init``).
        device: where to put the parameters.
        backend: ``ei_rnn_scan`` backend, ``'auto'`` | ``'fused'`` | ``'reference'`` (keyword only).
        noise_draw: see :data:`NOISE_DRAWS` (keyword only).

    State_dict: ``W_rec_raw`` ``[N, N]`` (or ``U``, ``V``), ``W_in`` ``[N, D]``, ``W_out``
    ``[n_outputs, n_exc]``, ``b_out``, ``rate_scale``, ``rate_baseline``, ``_alpha_logit`` /
    ``_alpha_e_logit`` / ``_alpha_i_logit``, ``_tau_e_raw`` / ``_tau_i_raw`` / ``_tau_per_neuron_raw``,
    ``h0``, ``input_embed.*``; buffers ``sign_mask``, ``diag_mask``.

    Initialisation draws from numpy's and torch's global RNGs in the predecessor's order, so the same
    ``np.random.seed``/``torch.manual_seed`` give the predecessor's initial weights.
    """

    TAU_MIN = P.TAU_MIN
    TAU_MAX = P.TAU_MAX

    def __init__(
        self,
        n_exc: int,
        n_inh: int,
        n_inputs: int,
        n_outputs: int = 2,
        tau: float = 50.0,
        dt: float = 25.0,
        noise_scale: float = 0.1,
        spectral_radius: float = 0.9,
        bypass_dale: bool = False,
        learnable_tau: str = "none",
        tau_e_init: float = 50.0,
        tau_i_init: float = 35.0,
        learnable_alpha: str = "none",
        alpha_init: float = 0.5,
        alpha_e_init: Optional[float] = None,
        alpha_i_init: Optional[float] = None,
        low_rank: Optional[int] = None,
        input_embed_dim: Optional[int] = None,
        input_embed_type: str = "learnable",
        input_time_lags: Optional[list] = None,
        embed_hidden_dim: Optional[int] = None,
        embed_n_layers: int = 2,
        input_groups: Optional[list] = None,
        group_embed_dims: Optional[list] = None,
        gru_hidden_dim: Optional[int] = None,
        attention_heads: int = 4,
        learnable_h0: bool = False,
        h0_init: float = 0.1,
        device: Union[str, torch.device] = "cpu",
        *,
        backend: str = "auto",
        noise_draw: str = "auto",
    ):
        super().__init__()
        for name, value in (("n_exc", n_exc), ("n_inh", n_inh), ("n_inputs", n_inputs), ("n_outputs", n_outputs)):
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 0:
                raise ValueError(f"{name} must be a non-negative int, got {value!r}")
        if n_exc + n_inh < 1 or n_inputs < 1:
            raise ValueError(f"need n_exc + n_inh >= 1 and n_inputs >= 1, got {n_exc}, {n_inh}, {n_inputs}")
        _check_choice("learnable_tau", learnable_tau, LEARNABLE_TAU_MODES)
        _check_choice("learnable_alpha", learnable_alpha, LEARNABLE_ALPHA_MODES)
        _check_choice("input_embed_type", input_embed_type, EMBED_TYPES)
        _check_choice("backend", backend, BACKENDS)
        _check_choice("noise_draw", noise_draw, NOISE_DRAWS)
        if learnable_tau != "none" and learnable_alpha != "none":
            raise ValueError("Cannot use both learnable_tau and learnable_alpha; choose one (the other 'none')")
        # numbers: a negative or zero tau gave alpha = dt / tau < 0 (NaN rates) or ZeroDivisionError
        _check_real("dt", dt, low=0.0, strict=True)
        if learnable_tau == "none" and learnable_alpha == "none":
            _check_real("tau", tau, low=0.0, strict=True)
        _check_real("noise_scale", noise_scale, low=0.0)
        _check_real("spectral_radius", spectral_radius, low=0.0)
        # learnable initial values are clipped into range as the predecessor did; only NaN/inf and
        # non-numbers are refused
        for name, value in (("tau_e_init", tau_e_init), ("tau_i_init", tau_i_init), ("alpha_init", alpha_init)):
            _check_real(name, value)
        for name, value in (("alpha_e_init", alpha_e_init), ("alpha_i_init", alpha_i_init)):
            if value is not None:
                _check_real(name, value)
        _check_real("h0_init", h0_init)
        if low_rank is not None and (not isinstance(low_rank, (int, np.integer)) or low_rank < 1):
            raise ValueError(f"low_rank must be None or a positive int, got {low_rank!r}")
        if low_rank is not None and low_rank >= n_exc + n_inh:
            warnings.warn(
                f"low_rank={low_rank} >= {n_exc + n_inh} units: U V^T is not rank-limited (only its "
                "parameterisation differs from a full W_rec)",
                UserWarning,
                stacklevel=2,
            )

        self.n_exc = int(n_exc)
        self.n_inh = int(n_inh)
        self.n_total = self.n_exc + self.n_inh
        self.n_inputs = int(n_inputs)
        self.n_outputs = int(n_outputs)
        self.dt = dt
        self.noise_scale = noise_scale
        self.spectral_radius = spectral_radius
        self.bypass_dale = bypass_dale
        self.learnable_tau = learnable_tau
        self.learnable_alpha = learnable_alpha
        self.low_rank = None if low_rank is None else int(low_rank)
        self.backend = backend
        self.noise_draw = noise_draw

        # --- input embedding (built first: it draws from torch's RNG before the weights, as before)
        if input_embed_dim is not None or input_embed_type in ALWAYS_ON_TYPES:
            self.input_embed = make_input_embedding(
                self.n_inputs,
                input_embed_dim,
                input_embed_type,
                time_lags=input_time_lags,
                embed_hidden_dim=embed_hidden_dim,
                embed_n_layers=embed_n_layers,
                input_groups=input_groups,
                group_embed_dims=group_embed_dims,
                gru_hidden_dim=gru_hidden_dim,
                attention_heads=attention_heads,
            )
            self.actual_n_inputs = self.input_embed.output_dim
        else:
            self.input_embed = None
            self.actual_n_inputs = self.n_inputs

        # --- leak alpha / time constant tau
        if alpha_e_init is None:
            alpha_e_init = alpha_init
        if alpha_i_init is None:
            alpha_i_init = min(0.95, alpha_init * 1.5)
        for name in (
            "_alpha_logit",
            "_alpha_e_logit",
            "_alpha_i_logit",
            "_tau_e_raw",
            "_tau_i_raw",
            "_tau_per_neuron_raw",
        ):
            self.register_parameter(name, None)
        self.tau: Optional[float] = None
        self.alpha: Optional[float] = None
        if learnable_alpha != "none":
            self._init_learnable_alpha(learnable_alpha, alpha_e_init, alpha_i_init)
        elif learnable_tau != "none":
            self._init_learnable_tau(learnable_tau, tau_e_init, tau_i_init)
            if dt > self.TAU_MIN:
                warnings.warn(
                    f"dt={dt} ms exceeds TAU_MIN={self.TAU_MIN} ms: learnable tau can reach alpha = dt/tau > 1",
                    RuntimeWarning,
                    stacklevel=2,
                )
        else:
            self.tau = tau
            self.alpha = dt / tau
            if self.alpha > 1:
                warnings.warn(
                    f"alpha = dt/tau = {self.alpha:.3g} > 1: the leak overshoots", RuntimeWarning, stacklevel=2
                )

        # --- weights (values set in _initialize_weights)
        if self.low_rank is not None:
            u, v = P.init_low_rank_factors(self.n_total, self.low_rank, spectral_radius)
            self.U = nn.Parameter(u)
            self.V = nn.Parameter(v)
            self.register_parameter("W_rec_raw", None)
        else:
            self.W_rec_raw = nn.Parameter(torch.zeros(self.n_total, self.n_total))
            self.register_parameter("U", None)
            self.register_parameter("V", None)
        self.W_in = nn.Parameter(torch.zeros(self.n_total, self.actual_n_inputs))
        self.W_out = nn.Parameter(torch.zeros(self.n_outputs, self.n_exc))
        self.b_out = nn.Parameter(torch.zeros(self.n_outputs))
        # output-rate affine: softplus ~ 1, recorded rates ~ 10 sp/s
        self.rate_scale = nn.Parameter(torch.tensor(10.0))
        self.rate_baseline = nn.Parameter(torch.tensor(0.5))

        self.learnable_h0 = bool(learnable_h0)
        if self.learnable_h0:
            self.h0 = nn.Parameter(torch.full((self.n_total,), float(h0_init)))
        else:
            self.register_parameter("h0", None)

        self.register_buffer("sign_mask", P.dale_sign_mask(self.n_exc, self.n_inh))
        self.register_buffer("diag_mask", P.zero_diagonal_mask(self.n_total))

        self._initialize_weights()
        self.to(device)

    # ---------------------------------------------------------------------------- construction
    def _init_learnable_alpha(self, mode: str, alpha_e_init: float, alpha_i_init: float) -> None:
        logit_e = P.alpha_to_logit(alpha_e_init)
        logit_i = P.alpha_to_logit(alpha_i_init)
        if mode == "scalar":
            self._alpha_logit = nn.Parameter(torch.tensor(logit_e))
        elif mode == "population":
            self._alpha_e_logit = nn.Parameter(torch.tensor(logit_e))
            self._alpha_i_logit = nn.Parameter(torch.tensor(logit_i))
        else:  # neuron
            self._alpha_logit = nn.Parameter(
                torch.cat([torch.full((self.n_exc,), logit_e), torch.full((self.n_inh,), logit_i)])
            )

    def _init_learnable_tau(self, mode: str, tau_e_init: float, tau_i_init: float) -> None:
        raw_e = self._tau_to_raw(tau_e_init)
        raw_i = self._tau_to_raw(tau_i_init)
        if mode == "population":
            self._tau_e_raw = nn.Parameter(torch.tensor(raw_e))
            self._tau_i_raw = nn.Parameter(torch.tensor(raw_i))
        else:  # neuron
            self._tau_per_neuron_raw = nn.Parameter(
                torch.cat([torch.full((self.n_exc,), raw_e), torch.full((self.n_inh,), raw_i)])
            )

    def _initialize_weights(self) -> None:
        """Predecessor's initialisation (RNG order included): ``W_rec`` (numpy), ``W_in`` U(0, 1),
        ``W_out`` U(-0.1, 0.1) (torch). Low-rank factors were drawn in ``__init__``."""
        with torch.no_grad():
            if self.low_rank is None:
                if self.bypass_dale:
                    w = P.init_unconstrained(self.n_total, self.spectral_radius)
                else:
                    w = P.init_dale_magnitudes(self.n_exc, self.n_inh, self.spectral_radius)
                self.W_rec_raw.copy_(torch.tensor(w, dtype=torch.float32))
            nn.init.uniform_(self.W_in, 0.0, 1.0)
            nn.init.uniform_(self.W_out, -0.1, 0.1)

    # Predecessor-compatible static helpers.
    @staticmethod
    def _alpha_to_logit(alpha: float) -> float:
        return P.alpha_to_logit(alpha)

    @staticmethod
    def _logit_to_alpha(logit: torch.Tensor) -> torch.Tensor:
        return P.alpha_from_logit(logit)

    def _tau_to_raw(self, tau: float) -> float:
        return P.tau_to_raw(tau, self.TAU_MIN, self.TAU_MAX)

    def _raw_to_tau(self, raw: torch.Tensor) -> torch.Tensor:
        return P.tau_from_raw(raw, self.TAU_MIN, self.TAU_MAX)

    # ------------------------------------------------------------------------- constrained views
    @property
    def W_rec(self) -> torch.Tensor:
        """Effective recurrent matrix ``[N, N]`` (row = postsynaptic unit): Dale's law (E columns
        >= 0, I columns <= 0) unless ``bypass_dale``, zero diagonal, low rank if configured."""
        if self.low_rank is not None:
            return P.low_rank_weight(self.U, self.V, self.sign_mask, self.diag_mask, self.bypass_dale)
        return P.dale_weight(self.W_rec_raw, self.sign_mask, self.diag_mask, self.bypass_dale)

    def _param_dtype(self) -> torch.dtype:
        return self.W_in.dtype

    def get_alpha(self, device: Optional[Union[str, torch.device]] = None) -> torch.Tensor:
        """Leak ``alpha = dt / tau``: a 0-d tensor (fixed, learnable scalar) or ``[N]`` (population,
        neuron). Differentiable w.r.t. the learnable logits / raw taus."""
        if self.learnable_alpha == "scalar" or self.learnable_alpha == "neuron":
            return P.alpha_from_logit(self._alpha_logit)
        if self.learnable_alpha == "population":
            a_e = P.alpha_from_logit(self._alpha_e_logit)
            a_i = P.alpha_from_logit(self._alpha_i_logit)
            return torch.cat([a_e.expand(self.n_exc), a_i.expand(self.n_inh)])
        if self.learnable_tau == "population":
            tau_e = self._raw_to_tau(self._tau_e_raw)
            tau_i = self._raw_to_tau(self._tau_i_raw)
            return torch.cat([(self.dt / tau_e).expand(self.n_exc), (self.dt / tau_i).expand(self.n_inh)])
        if self.learnable_tau == "neuron":
            return self.dt / self._raw_to_tau(self._tau_per_neuron_raw)
        if device is None:
            device = self.W_in.device
        return torch.tensor(self.alpha, dtype=self._param_dtype(), device=device)

    def get_tau_values(self) -> dict:
        """Time constants (ms) as Python floats: ``{'tau'}`` (fixed), ``{'tau_e', 'tau_i'}``
        (population), ``{'tau_e_mean', 'tau_e_std', 'tau_i_mean', 'tau_i_std'}`` (neuron);
        ``{}`` with learnable alpha."""
        with torch.no_grad():
            if self.learnable_tau == "population":
                return {
                    "tau_e": self._raw_to_tau(self._tau_e_raw).item(),
                    "tau_i": self._raw_to_tau(self._tau_i_raw).item(),
                }
            if self.learnable_tau == "neuron":
                return _split_stats(self._raw_to_tau(self._tau_per_neuron_raw), self.n_exc, "tau")
        return {"tau": self.tau} if self.tau is not None else {}

    def get_alpha_values(self) -> dict:
        """Leaks as Python floats: ``{'alpha'}`` (fixed, scalar), ``{'alpha_e', 'alpha_i'}``
        (population alpha or tau), ``{'alpha_e_mean', 'alpha_e_std', 'alpha_i_mean', 'alpha_i_std'}``
        (per-neuron alpha or tau; the predecessor returned ``{}`` for per-neuron tau)."""
        with torch.no_grad():
            if self.learnable_alpha == "scalar":
                return {"alpha": P.alpha_from_logit(self._alpha_logit).item()}
            if self.learnable_alpha == "population":
                return {
                    "alpha_e": P.alpha_from_logit(self._alpha_e_logit).item(),
                    "alpha_i": P.alpha_from_logit(self._alpha_i_logit).item(),
                }
            if self.learnable_alpha == "neuron" or self.learnable_tau == "neuron":
                return _split_stats(self.get_alpha(), self.n_exc, "alpha")
            if self.learnable_tau == "population":
                tau = self.get_tau_values()
                return {"alpha_e": self.dt / tau["tau_e"], "alpha_i": self.dt / tau["tau_i"]}
        return {"alpha": self.alpha}

    def get_weight_submatrices(self) -> dict:
        """Blocks of the effective ``W_rec`` as numpy arrays: ``W_EE`` [n_exc, n_exc] (E->E),
        ``W_EI`` [n_exc, n_inh] (I->E), ``W_IE`` [n_inh, n_exc] (E->I), ``W_II`` [n_inh, n_inh] (I->I)."""
        w = self.W_rec.detach().cpu().numpy()
        e = self.n_exc
        return {"W_EE": w[:e, :e], "W_EI": w[:e, e:], "W_IE": w[e:, :e], "W_II": w[e:, e:]}

    def verify_constraints(self) -> bool:
        """True when E columns of ``W_rec`` are >= -1e-6, I columns <= 1e-6 and the diagonal is 0
        (atol 1e-6). Each violation is also reported with a ``UserWarning``. (With ``bypass_dale``
        the sign checks usually fail, as in the predecessor.)"""
        w = self.W_rec.detach()
        e = self.n_exc
        checks = {
            "E columns have negative values": bool((w[:, :e] >= -1e-6).all()),
            "I columns have positive values": bool((w[:, e:] <= 1e-6).all()),
            "Diagonal is not zero": bool((w.diagonal().abs() <= 1e-6).all()),
        }
        for message, ok in checks.items():
            if not ok:
                warnings.warn(f"EIRNN.verify_constraints: {message}", UserWarning, stacklevel=2)
        return all(checks.values())

    # ---------------------------------------------------------------------------------- forward
    def _check_inputs(self, inputs: torch.Tensor) -> torch.Tensor:
        if not isinstance(inputs, torch.Tensor):
            raise TypeError(f"inputs must be a torch.Tensor, got {type(inputs).__name__}")
        if inputs.dim() != 3 or inputs.shape[-1] != self.n_inputs or inputs.shape[0] < 1 or inputs.shape[1] < 1:
            raise ValueError(
                f"inputs must be [batch, time, n_inputs] = [B>=1, T>=1, {self.n_inputs}], got shape {tuple(inputs.shape)}"
            )
        if inputs.device != self.W_in.device:
            raise ValueError(f"inputs are on {inputs.device} but the model is on {self.W_in.device}")
        dtype = self._param_dtype()
        return inputs if inputs.dtype == dtype else inputs.to(dtype)

    def _initial_state(self, initial_state: Optional[torch.Tensor], batch: int) -> torch.Tensor:
        dtype, device = self._param_dtype(), self.W_in.device
        if initial_state is not None:
            if initial_state.shape not in ((batch, self.n_total), (self.n_total,)):
                raise ValueError(
                    f"initial_state must be [batch, n_total] = [{batch}, {self.n_total}] or [{self.n_total}], "
                    f"got shape {tuple(initial_state.shape)}"
                )
            return initial_state.to(device=device, dtype=dtype)
        if self.h0 is not None:
            return self.h0
        return torch.zeros(self.n_total, dtype=dtype, device=device)

    def _draw_noise(self, batch: int, steps: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        mode = self.noise_draw
        if mode in ("auto", "counter"):  # only reached where the fused CPU kernels are not used
            mode = "batched"
        if mode == "per_step":  # the predecessor's stream: randn_like(x) once per step
            return torch.stack([torch.randn(batch, self.n_total, dtype=dtype, device=device) for _ in range(steps)], 1)
        return torch.randn(batch, steps, self.n_total, dtype=dtype, device=device)

    def forward(
        self,
        inputs: torch.Tensor,
        initial_state: Optional[torch.Tensor] = None,
        return_states: bool = False,
        *,
        noise: Union[None, bool, torch.Tensor] = None,
    ):
        """Run the network on a batch of trials.

        Args:
            inputs: ``[B, T, n_inputs]`` task inputs (cast to the model's dtype).
            initial_state: ``[B, N]`` or ``[N]`` state ``x_{-1}``; default ``h0`` if learnable, else 0.
            return_states: also return the states.
            noise: ``None``/``True``: draw noise with ``self.noise_scale`` (off when it is 0);
                ``False``: no noise; a ``[B, T, N]`` tensor: use it as the standard-normal draws
                ``xi`` (scaled by ``noise_scale * sqrt(mean alpha)`` here).

        Returns:
            ``rates`` ``[B, T, N]`` (sp/s scale; ``rates_t`` is read from ``x_{t-1}``),
            ``outputs`` ``[B, T, n_outputs]``, and with ``return_states`` the states
            ``x_0 .. x_{T-1}`` ``[B, T, N]`` (``x_t`` is the state after step t, so
            ``rates_{t+1} = f(states_t)``). Because of the lag, ``rates_0`` does not depend on the
            inputs and the last bin's input ``u_{T-1}`` reaches only ``states``, as in the predecessor.
        """
        u = self._check_inputs(inputs)
        batch, steps, _ = u.shape
        if self.input_embed is not None:
            u = self.input_embed(u)  # [B, T, D]
        x0 = self._initial_state(initial_state, batch)  # [B, N] or [N]
        w_rec = self.W_rec  # [N, N]
        alpha = self.get_alpha(u.device)  # [] or [N]

        # alpha * (u_t @ W_in^T) as one GEMM with alpha folded into the rows of W_in
        w_in = self.W_in * (alpha.unsqueeze(-1) if alpha.dim() else alpha)  # [N, D]
        drive = F.linear(u, w_in)  # [B, T, N]
        scale = self.noise_scale
        if isinstance(noise, torch.Tensor):
            if noise.shape != (batch, steps, self.n_total):
                raise ValueError(
                    f"noise must be [B, T, N] = [{batch}, {steps}, {self.n_total}], got shape {tuple(noise.shape)}"
                )
            xi = noise.to(device=drive.device, dtype=drive.dtype)
        elif noise is False or not scale:
            xi = None
        elif (
            self.noise_draw in ("counter", "auto")
            and _backend.choose("eirnn_counter_noise", self.backend, drive.device) == "fused"
        ):
            drive = state_noise_(drive, scale * alpha.mean().sqrt(), backend="fused")  # in place, no xi tensor
            xi = None
        else:
            xi = self._draw_noise(batch, steps, drive.dtype, drive.device)
        if xi is not None and scale:
            drive = torch.addcmul(drive, xi, scale * alpha.mean().sqrt())  # noise std s * sqrt(mean alpha)

        states = ei_rnn_scan(drive, x0, w_rec, alpha, backend=self.backend)  # [B, T, N]
        # rates_t from x_{t-1}: fused pass on CPU, the eager expression elsewhere
        rates = ei_rnn_rates(
            states,
            x0,
            self.rate_scale,
            self.rate_baseline,
            backend=_backend.for_model_op(self.backend),
        )
        outputs = F.linear(rates[..., : self.n_exc], self.W_out, self.b_out)
        if return_states:
            return rates, outputs, states
        return rates, outputs

    def extra_repr(self) -> str:
        parts = [
            f"n_exc={self.n_exc}, n_inh={self.n_inh}, n_inputs={self.n_inputs}, n_outputs={self.n_outputs}",
            f"dt={self.dt}, noise_scale={self.noise_scale}, backend={self.backend!r}",
        ]
        if self.learnable_alpha != "none":
            parts.append(f"learnable_alpha={self.learnable_alpha!r}")
        elif self.learnable_tau != "none":
            parts.append(f"learnable_tau={self.learnable_tau!r}")
        else:
            parts.append(f"tau={self.tau}")
        if self.low_rank is not None:
            parts.append(f"low_rank={self.low_rank}")
        if self.bypass_dale:
            parts.append("bypass_dale=True")
        return ", ".join(parts)


def _split_stats(values: torch.Tensor, n_exc: int, name: str) -> dict:
    e, i = values[:n_exc], values[n_exc:]
    return {
        f"{name}_e_mean": e.mean().item(),
        f"{name}_e_std": e.std().item(),
        f"{name}_i_mean": i.mean().item(),
        f"{name}_i_std": i.std().item(),
    }


def create_model_from_data(
    n_classic: int,
    n_interneuron: int,
    n_inputs: int,
    enforce_ratio: bool = True,
    target_ratio: float = 4.0,
    bypass_dale: bool = False,
    target_total: Optional[int] = None,
    **model_kwargs,
) -> EIRNN:
    """Build an :class:`EIRNN` sized for a recording (unit counts from :func:`ei_unit_counts`).

    Units ``0..n_exc-1`` are E, the rest I. Which unit fits which recorded neuron is *not* decided
    here: use :func:`recorded_unit_index` (the predecessor paired unit i with recorded neuron i, which
    fits most interneurons with E units). ``model_kwargs`` go to :class:`EIRNN`. The configuration is
    logged at INFO level (the predecessor printed it).
    """
    n_exc, n_inh = ei_unit_counts(n_classic, n_interneuron, enforce_ratio, target_ratio, target_total)
    logger.info(
        "EIRNN: recorded %d E + %d I, hidden %d E + %d I, total %d E + %d I = %d (E:I %.2f)%s",
        n_classic,
        n_interneuron,
        n_exc - n_classic,
        n_inh - n_interneuron,
        n_exc,
        n_inh,
        n_exc + n_inh,
        n_exc / max(n_inh, 1),
        ", Dale's law bypassed" if bypass_dale else "",
    )
    return EIRNN(n_exc=n_exc, n_inh=n_inh, n_inputs=n_inputs, bypass_dale=bypass_dale, **model_kwargs)
