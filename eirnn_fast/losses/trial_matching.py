"""Trial-matching loss L_trial: entropic OT between single-trial features of model and data.

Two modes:

* ``faithful=True`` reproduces the predecessor (4factors-rnn-analysis 6fa65af ``compute_L_trial`` +
  ``sinkhorn_assignment``) exactly, for comparisons with its results: the population average over
  the recorded neurons (one value per bin), masked by multiplication, z-scored per time bin across
  trials with each side's own mean and (unbiased) std + 1e-8, unsquared Euclidean distances
  (``torch.cdist``), 20 unrolled log-domain Sinkhorn iterations at eps = 0.1 with unit row/column
  sums (not 1/n), loss <P, D> / n, differentiated by unrolling. Its Poisson mode uses the
  non-z-scored population rates clamped at 1e-8, D_ij = sum_t [y log(y + 1e-8) - y log(m + 1e-8) - y + m] / T.
  (Note: 20 iterations at eps = 0.1 leave the plan far from doubly stochastic; see
  research/sc_rnn_and_style_anchors.md 1.1.)
* the default builds on :func:`eirnn_fast.ops.sinkhorn`: converged OT_eps with uniform weights 1/n,
  1/m (so <P, C> is the mean matched cost per model trial, the predecessor's scale), envelope
  gradient, optional matching within condition groups (one OT problem per group, solved as one
  batch padded with zero weights), optional debiasing, features beyond the population mean.
"""

from __future__ import annotations

from typing import Optional, Tuple, Union

import torch

from eirnn_fast.ops.sinkhorn import sinkhorn
from eirnn_fast.units import as_unit_index

FEATURES = ("pop_mean", "pop_mean_by_type", "full")
ZSCORES = ("per_side", "data", None)


def _select(model_rates, target_rates, recorded_indices):
    n_rec = target_rates.shape[2]
    if recorded_indices is not None:
        return model_rates[:, :, recorded_indices]
    return model_rates[:, :, :n_rec]


def _population_mean(model_rates, target_rates, recorded_indices):
    """``[K, T]`` mean over the recorded units of ``model_rates``: with ``recorded_indices`` one
    matrix-vector product with weights 1/n on those units (no ``[K, T, n]`` gather: the strided
    gather and its scatter backward cost more than the rest of L_trial at the SC batch shape)."""
    if recorded_indices is None:
        return model_rates[:, :, : target_rates.shape[2]].mean(dim=2)
    idx = as_unit_index(recorded_indices, model_rates.device, "recorded_indices")
    w = model_rates.new_zeros(model_rates.shape[2])
    try:  # index_add_ refuses units outside the rates (negative ones included)
        w.index_add_(0, idx, w.new_full((idx.numel(),), 1.0 / max(idx.numel(), 1)))
    except (IndexError, RuntimeError) as exc:
        raise ValueError(f"recorded_indices holds a unit outside [0, {model_rates.shape[2]}): {exc}") from None
    return torch.matmul(model_rates, w)


def _faithful_sinkhorn(D: torch.Tensor, n_iters: int, eps: float) -> torch.Tensor:
    """Predecessor's plan: unit row/column sums, fixed iteration count, unrolled autograd."""
    log_k = -D / eps
    log_u = D.new_zeros(D.shape[0])
    log_v = D.new_zeros(D.shape[1])
    for _ in range(n_iters):
        log_u = -torch.logsumexp(log_k + log_v.unsqueeze(0), dim=1)
        log_v = -torch.logsumexp(log_k + log_u.unsqueeze(1), dim=0)
    return torch.exp(log_k + log_u.unsqueeze(1) + log_v.unsqueeze(0))


def faithful_trial_matching_loss(
    model_rates: torch.Tensor,  # [K, T, N_model]
    target_rates: torch.Tensor,  # [K', T, N]
    *,
    mask: Optional[torch.Tensor] = None,  # [K, T] (same trials on both sides, as the predecessor)
    recorded_indices: Optional[torch.Tensor] = None,
    poisson: bool = False,
    eps: float = 0.1,
    n_iters: int = 20,
) -> torch.Tensor:
    """The predecessor's L_trial (see the module docstring); plain PyTorch, unrolled gradient."""
    m_pop = _population_mean(model_rates, target_rates, recorded_indices)  # [K, T]
    t_pop = target_rates.mean(dim=2)  # [K', T]
    if mask is not None:
        m_pop = m_pop * mask
        t_pop = t_pop * mask
    # its temporal smoothing (32 ms at 25-ms bins) is a 1-bin kernel: a no-op, omitted
    if poisson:
        floor = 1e-8
        m = m_pop.clamp_min(floor).unsqueeze(1)  # [K, 1, T]
        t = t_pop.clamp_min(floor).unsqueeze(0)  # [1, K', T]
        D = (t * torch.log(t + floor) - t * torch.log(m + floor) - t + m).sum(2) / m_pop.shape[1]
    else:
        zm = (m_pop - m_pop.mean(0, keepdim=True)) / (m_pop.std(0, keepdim=True) + 1e-8)
        zt = (t_pop - t_pop.mean(0, keepdim=True)) / (t_pop.std(0, keepdim=True) + 1e-8)
        D = torch.cdist(zm, zt, p=2)
    P = _faithful_sinkhorn(D, n_iters, eps)
    return (P * D).sum() / D.shape[0]


def trial_features(
    rates: torch.Tensor,  # [K, T, N]
    feature: str = "pop_mean",
    neuron_type: Optional[torch.Tensor] = None,  # [N] labels (e.g. 1 = E, 2 = I)
    mask: Optional[torch.Tensor] = None,  # [K, T]
) -> torch.Tensor:  # [K, F]
    """One feature vector per trial: population mean per bin [K, T], population mean per neuron
    type and bin [K, T * n_types] (types in sorted label order), or every neuron [K, T * N]."""
    if feature not in FEATURES:
        raise ValueError(f"feature must be one of {FEATURES}, got {feature!r}")
    if feature == "pop_mean":
        out = rates.mean(dim=2, keepdim=True)  # [K, T, 1]
    elif feature == "pop_mean_by_type":
        if neuron_type is None:
            raise ValueError("feature='pop_mean_by_type' needs neuron_type [N]")
        neuron_type = torch.as_tensor(neuron_type, device=rates.device)
        if neuron_type.shape != (rates.shape[2],):
            raise ValueError(f"neuron_type must be [N] = [{rates.shape[2]}], got shape {tuple(neuron_type.shape)}")
        out = torch.stack([rates[:, :, neuron_type == t].mean(dim=2) for t in torch.unique(neuron_type)], dim=2)
    else:
        out = rates
    if mask is not None:
        out = out * mask.unsqueeze(2).to(out.dtype)
    return out.reshape(rates.shape[0], -1)


def _standardise(x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """``(x - mean(ref)) / std(ref)`` per feature (column), with features whose spread in ``ref`` is at
    rounding level (std <= 64 eps |mean|, e.g. bin 0, where every model trial starts from the same
    state) set to exactly 0: dividing their rounding residue by ~1e-8, as ``std + 1e-8`` did, turned
    it into O(1) spurious float32 gradients."""
    mu, sd = ref.mean(0, keepdim=True), ref.std(0, keepdim=True)
    floor = 64 * torch.finfo(ref.dtype).eps * ref.detach().abs().mean(0, keepdim=True)
    const = sd <= floor
    z = (x - mu) / torch.where(const, torch.ones_like(sd), sd)
    return torch.where(const, torch.zeros_like(z), z)


def _zscore(xm, xt, mode):
    if mode is None:
        return xm, xt
    if mode == "per_side":  # each side its own statistics
        return _standardise(xm, xm), _standardise(xt, xt)
    return _standardise(xm, xt), _standardise(xt, xt)  # "data": the data's statistics for both


def _group_batches(xm, xt, gm, gt):
    """Pad the trials of each group into [G, n_max, F] / [G, m_max, F] with zero weights."""
    labels = torch.unique(torch.cat([gm, gt]))
    G = labels.numel()
    counts_m = torch.stack([(gm == l).sum() for l in labels]).tolist()
    counts_t = torch.stack([(gt == l).sum() for l in labels]).tolist()
    if min(counts_m) == 0 or min(counts_t) == 0:
        raise ValueError("every group label must occur among both the model and the target trials")
    n_max, m_max = max(counts_m), max(counts_t)
    a = xm.new_zeros(G, n_max)
    b = xt.new_zeros(G, m_max)
    rows_m, rows_t = [], []
    for k, l in enumerate(labels):
        im = torch.nonzero(gm == l).squeeze(1)
        it = torch.nonzero(gt == l).squeeze(1)
        rows_m.append(xm[im])
        rows_t.append(xt[it])
        a[k, : im.numel()] = 1.0
        b[k, : it.numel()] = 1.0
    X = torch.stack([torch.cat([r, r.new_zeros(n_max - r.shape[0], r.shape[1])]) for r in rows_m])
    Y = torch.stack([torch.cat([r, r.new_zeros(m_max - r.shape[0], r.shape[1])]) for r in rows_t])
    # padded slots get the first real point of their group (zero weight; keeps Poisson rates valid)
    for k in range(G):
        X[k, counts_m[k] :] = X[k, 0].detach()
        Y[k, counts_t[k] :] = Y[k, 0].detach()
    return X, Y, a, b, torch.tensor(counts_m, dtype=xm.dtype, device=xm.device)


def trial_matching_loss(
    model_rates: torch.Tensor,  # [K, T, N_model]
    target_rates: torch.Tensor,  # [K', T, N]
    *,
    feature: str = "pop_mean",
    zscore: Union[str, None] = "auto",
    cost: str = "euclidean",
    eps: Union[float, torch.Tensor] = 0.1,
    faithful: bool = False,
    neuron_type: Optional[torch.Tensor] = None,
    groups: Union[None, torch.Tensor, Tuple[torch.Tensor, torch.Tensor]] = None,
    mask: Optional[torch.Tensor] = None,
    recorded_indices: Optional[torch.Tensor] = None,
    max_iter: int = 1000,
    tol: float = 1e-6,
    eps_scaling: Optional[float] = None,
    debias: bool = False,
    backend: str = "auto",
    on_nonconvergence: str = "ignore",
    ot_stats: Optional["OTStats"] = None,
) -> torch.Tensor:  # scalar
    """Trial-matching loss between model and recorded single trials (scalar, differentiable).

    Args:
        model_rates: ``[K, T, N_model]`` model rates (sp/s); the recorded units are
            ``recorded_indices`` or the first N.
        target_rates: ``[K', T, N]`` recorded rates.
        feature: ``"pop_mean"`` (population average per bin, the predecessor's), ``"pop_mean_by_type"``
            (per neuron type, needs ``neuron_type``) or ``"full"`` (every neuron and bin).
        zscore: ``"per_side"`` (per feature across trials, each side its own statistics: the
            predecessor's; removes any penalty on the mean and spread), ``"data"`` (the data's
            statistics applied to both sides, as Sourmpis et al. 2023) or None. ``"auto"``: per_side
            for the Euclidean costs, None for Poisson (which needs non-negative rates).
        cost: ``"euclidean"`` | ``"sqeuclidean"`` | ``"poisson"`` (D(target || model) on the features).
        eps: absolute entropic regularisation (cost units), or a ``[G]`` tensor.
        faithful: reproduce the predecessor exactly (see the module docstring; only ``cost``
            "euclidean"/"poisson", ``mask`` and ``recorded_indices`` are used, eps 0.1, 20 iterations).
        groups: condition labels: one ``[K]`` tensor when both sides hold the same trials, or a
            pair ``(model_labels [K], target_labels [K'])``. One OT problem per group (batched);
            the loss is the average over groups weighted by their number of model trials.
        mask: ``[K, T]`` valid bins (multiplies the features, as the predecessor did); needs K = K'.
        max_iter, tol, eps_scaling, debias, backend: passed to :func:`eirnn_fast.ops.sinkhorn`.
        on_nonconvergence: passed to :func:`eirnn_fast.ops.sinkhorn`; ``"ignore"`` by default, because
            a training loss is evaluated every step and a fixed-budget solve is its definition
            (``"warn"`` / ``"raise"`` to be told when a solve stops at ``max_iter``).
        ot_stats: an :class:`OTStats` that accumulates the solves' convergence on the device (no host
            sync per call; a trainer reads it once per logging interval). Not used by ``faithful``
            (a fixed 20-iteration scheme, nothing to converge).

    Returns:
        scalar loss: OT_eps with uniform weights (1/n, 1/m), i.e. the expected matched cost per model
        trial plus eps times the plan's KL to independence (minus self-terms with ``debias``).
    """
    for name, t in (("model_rates", model_rates), ("target_rates", target_rates)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if t.dim() != 3:
            raise ValueError(f"{name} must be [K, T, N], got shape {tuple(t.shape)}")
        if not t.is_floating_point():
            raise TypeError(f"{name} must be a floating-point tensor (rates in sp/s), got dtype {t.dtype}")
    if model_rates.shape[1] != target_rates.shape[1]:
        raise ValueError(
            f"model_rates and target_rates must have the same T, got {model_rates.shape[1]} and {target_rates.shape[1]}"
        )
    if mask is not None and (
        mask.shape != (model_rates.shape[0], model_rates.shape[1]) or target_rates.shape[0] != model_rates.shape[0]
    ):
        raise ValueError(
            f"mask must be [K, T] = [{model_rates.shape[0]}, {model_rates.shape[1]}] with K = K' trials on both sides, got {tuple(mask.shape)}"
        )
    if cost not in ("euclidean", "sqeuclidean", "poisson"):
        raise ValueError(f"cost must be 'euclidean', 'sqeuclidean' or 'poisson', got {cost!r}")
    if faithful:
        if cost == "sqeuclidean" or groups is not None or feature != "pop_mean" or debias:
            raise ValueError(
                "faithful=True reproduces the predecessor only: cost 'euclidean' or 'poisson', "
                "feature 'pop_mean', no groups, no debias"
            )
        return faithful_trial_matching_loss(
            model_rates, target_rates, mask=mask, recorded_indices=recorded_indices, poisson=cost == "poisson"
        )
    if zscore == "auto":
        zscore = None if cost == "poisson" else "per_side"
    if zscore not in ZSCORES:
        raise ValueError(f"zscore must be one of {ZSCORES} or 'auto', got {zscore!r}")
    if cost == "poisson" and zscore is not None:
        raise ValueError("cost='poisson' compares non-negative rates: use zscore=None")

    if feature == "pop_mean":
        xm = _population_mean(model_rates, target_rates, recorded_indices).unsqueeze(2)  # [K, T, 1]
        if mask is not None:
            xm = xm * mask.unsqueeze(2).to(xm.dtype)
        xm = xm.reshape(model_rates.shape[0], -1)
    else:
        xm = trial_features(_select(model_rates, target_rates, recorded_indices), feature, neuron_type, mask)  # [K, F]
    xt = trial_features(target_rates, feature, neuron_type, mask)  # [K', F]
    if cost == "poisson":
        xm = xm.clamp_min(0.0)  # rates are >= 0 by construction; guard rounding
    xm, xt = _zscore(xm, xt, zscore)

    kw = dict(
        eps=eps,
        cost=cost,
        max_iter=max_iter,
        tol=tol,
        eps_scaling=eps_scaling,
        debias=debias,
        backend=backend,
        on_nonconvergence=on_nonconvergence,
    )
    if ot_stats is not None:
        kw["return_info"] = True
    if groups is None:
        out = sinkhorn(xm.unsqueeze(0), xt.unsqueeze(0), **kw)
        if ot_stats is not None:
            out, info = out
            ot_stats.add(info)
        return out[0]
    if isinstance(groups, (tuple, list)):
        gm, gt = (torch.as_tensor(g, device=xm.device) for g in groups)
    else:
        gm = gt = torch.as_tensor(groups, device=xm.device)
    if gm.shape != (xm.shape[0],) or gt.shape != (xt.shape[0],):
        raise ValueError(f"groups must be [K] labels (or a pair ([K], [K'])) for K = {xm.shape[0]}, K' = {xt.shape[0]}")
    X, Y, a, b, counts = _group_batches(xm, xt, gm, gt)
    values = sinkhorn(X, Y, a=a, b=b, **kw)  # [G]
    if ot_stats is not None:
        values, info = values
        ot_stats.add(info)
    return (values * counts).sum() / counts.sum()


class OTStats:
    """Convergence of the Sinkhorn solves of many loss calls, kept on the device: ``add`` costs no
    host sync; ``read()`` (one sync) returns ``{"ot_solves", "ot_unconverged",
    "ot_max_marginal_error"}`` since the last read and starts over."""

    def __init__(self):
        self.reset()

    def reset(self) -> None:
        self.solves = 0
        self.unconverged: Optional[torch.Tensor] = None  # int64 scalar on the solves' device
        self.max_error: Optional[torch.Tensor] = None

    def add(self, info) -> None:
        bad = (~info.converged).sum()
        err = info.marginal_error.detach().max()
        self.solves += int(info.converged.numel())  # a shape, no sync
        self.unconverged = bad if self.unconverged is None else self.unconverged + bad
        self.max_error = err if self.max_error is None else torch.maximum(self.max_error, err)

    def read(self) -> dict:
        out = {
            "ot_solves": self.solves,
            "ot_unconverged": int(self.unconverged) if self.unconverged is not None else 0,
            "ot_max_marginal_error": float(self.max_error) if self.max_error is not None else 0.0,
        }
        self.reset()
        return out
