"""Model units and recorded neurons: how many E and I units a recording needs (:func:`ei_unit_counts`),
which unit fits which recorded neuron (:func:`recorded_unit_index`), selecting those units from the
rates (:func:`select_units`), and the one check that an index of model units (``unit_index``,
``recorded_indices``) is a 1-D sequence of integers (:func:`as_unit_index`, no host sync: range checks
stay with the op that indexes). Here rather than in :mod:`eirnn_fast.models` so that the losses,
metrics and trainer pair units without importing the model."""

from __future__ import annotations

import math
import warnings
from typing import Optional, Sequence

import numpy as np
import torch


def as_unit_index(unit_index, device, name: str = "unit_index") -> torch.Tensor:
    """``unit_index`` as a 1-D ``long`` tensor on ``device``; ``TypeError`` naming ``name`` for floats,
    bools or another number of dimensions (``.long()`` would truncate floats silently)."""
    idx = torch.as_tensor(unit_index, device=device)
    if idx.dim() != 1 or (idx.numel() and (idx.is_floating_point() or idx.dtype == torch.bool)):
        raise TypeError(f"{name} must be a 1-D sequence of ints, got {idx.dtype} of shape {tuple(idx.shape)}")
    return idx.long()


def _check_real(name: str, value, *, low: Optional[float] = None, strict: bool = False) -> float:
    """A finite real number (``value > low`` with ``strict``, else ``>= low``): TypeError for a
    non-number, ValueError naming ``name`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    if low is not None and (value <= low if strict else value < low):
        raise ValueError(f"{name} must be {'>' if strict else '>='} {low:g}, got {value:g}")
    return value


def _check_count(name: str, value, *, low: int = 0) -> int:
    """An int >= ``low`` (numpy ints accepted; floats such as 4.5 or 4.0 are a TypeError)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")
    return int(value)


def ei_unit_counts(
    n_classic: int,
    n_interneuron: int,
    enforce_ratio: bool = True,
    target_ratio: float = 4.0,
    target_total: Optional[int] = None,
) -> tuple[int, int]:
    """``(n_exc, n_inh)`` for ``n_classic`` recorded E and ``n_interneuron`` recorded I neurons, padded
    with hidden units exactly as the predecessor's ``create_model_from_data``:

    - ``target_total``: ``n_exc = round(total * ratio / (ratio + 1))``, the rest I, each raised to at
      least the recorded count (the total may then exceed ``target_total``);
    - ``enforce_ratio``: if ``n_classic / max(n_interneuron, 1) >= ratio`` keep the E count and use
      ``max(ceil(n_classic / ratio), n_interneuron)`` I units, else keep the I count and use
      ``max(ceil(n_interneuron * ratio), n_classic)`` E units (41 + 13 -> 52 E + 13 I);
    - otherwise the recorded counts.

    Counts must be ints >= 0 (TypeError / ValueError naming the argument), ``target_ratio`` a
    finite number > 0, ``target_total`` None or an int >= 1.
    """
    _check_unit_counts(n_classic, n_interneuron, target_ratio, target_total)
    if target_total is not None:
        n_exc = int(round(target_total * target_ratio / (target_ratio + 1)))
        n_inh = target_total - n_exc
        if n_exc < n_classic:
            warnings.warn(
                f"target_total {target_total} gives only {n_exc} E units for {n_classic} recorded E neurons; using {n_classic}",
                stacklevel=3,
            )
            n_exc = n_classic
            n_inh = max(n_inh, n_interneuron)
        if n_inh < n_interneuron:
            warnings.warn(
                f"target_total {target_total} gives only {n_inh} I units for {n_interneuron} recorded I neurons; "
                f"using {n_interneuron}",
                stacklevel=3,
            )
            n_inh = n_interneuron
    elif enforce_ratio:
        if n_classic / max(n_interneuron, 1) >= target_ratio:
            n_exc = n_classic
            n_inh = max(int(math.ceil(n_classic / target_ratio)), n_interneuron)
        else:
            n_inh = n_interneuron
            n_exc = max(int(math.ceil(n_interneuron * target_ratio)), n_classic)
    else:
        n_exc, n_inh = n_classic, n_interneuron
    return int(n_exc), int(n_inh)


def _check_unit_counts(n_classic, n_interneuron, target_ratio, target_total) -> None:
    # -1 recorded E neurons built 12 E + 3 I units and 4.5 was truncated to 4: refuse both
    _check_count("n_classic", n_classic)
    _check_count("n_interneuron", n_interneuron)
    _check_real("target_ratio", target_ratio, low=0.0, strict=True)
    if target_total is not None:
        _check_count("target_total", target_total, low=1)


def recorded_unit_index(neuron_type: Sequence[int], n_exc: int, n_inh: Optional[int] = None) -> torch.Tensor:
    """``[n_recorded]`` long tensor: the model unit that fits each recorded neuron.

    ``neuron_type`` per recorded neuron: 1 = classic (E), 2 = interneuron (I), as in the MAT export.
    The k-th recorded E neuron (in recording order) maps to unit k; the k-th recorded I neuron to
    unit ``n_exc + k``. So ``rates[..., recorded_unit_index(...)]`` lines up with the recorded
    ``targets`` and every interneuron is fitted by an I unit.
    """
    types = torch.as_tensor(np.asarray(neuron_type).reshape(-1).astype(np.int64))
    bad = ~((types == 1) | (types == 2))
    if bool(bad.any()):
        raise ValueError(f"neuron_type must contain only 1 (E) and 2 (I), got {sorted(set(types[bad].tolist()))}")
    is_e = types == 1
    n_rec_e, n_rec_i = int(is_e.sum()), int((~is_e).sum())
    if n_rec_e > n_exc or (n_inh is not None and n_rec_i > n_inh):
        raise ValueError(
            f"{n_rec_e} E + {n_rec_i} I recorded neurons do not fit a model with {n_exc} E + {n_inh} I units"
        )
    index = torch.empty(types.numel(), dtype=torch.long)
    index[is_e] = torch.arange(n_rec_e)
    index[~is_e] = n_exc + torch.arange(n_rec_i)
    return index


def select_units(rates: torch.Tensor, unit_index) -> torch.Tensor:
    """``rates[..., unit_index]`` (``[..., N_units]`` -> ``[..., len(unit_index)]``), differentiable.

    ``index_select`` on the last dim of a ``[B, T, N]`` tensor takes ATen's strided path (8x
    slower, 27x with the backward, at the SC batch shape on the CI CPU); on the rows of a 2-D view
    it is a contiguous gather, so contiguous inputs go that way.
    """
    idx = as_unit_index(unit_index, rates.device)
    n_units = rates.shape[-1] if rates.dim() else 0
    if idx.numel() and rates.device.type != "meta":  # "INDICES element is out of DATA bounds" named nothing
        lo, hi = int(idx.min()), int(idx.max())
        if lo < 0 or hi >= n_units:
            bad = lo if lo < 0 else hi
            raise ValueError(
                f"unit_index holds unit {bad}, outside [0, {n_units}): the rates have {n_units} units "
                f"(shape {tuple(rates.shape)}); build it with recorded_unit_index(neuron_type, model.n_exc, model.n_inh)"
            )
    if rates.dim() >= 2 and rates.is_contiguous():
        n = rates.shape[-1]
        return rates.reshape(-1, n).index_select(1, idx).reshape(*rates.shape[:-1], idx.numel())
    return rates.index_select(-1, idx)
