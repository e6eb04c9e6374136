"""Unit indices: the one check that an index of model units (``unit_index``, ``recorded_indices``)
is a 1-D sequence of integers, shared by the model's ``select_units`` and the losses that select the
recorded units after a mean. No host sync: range checks stay with the op that indexes."""

from __future__ import annotations

import torch


def as_unit_index(unit_index, device, name: str = "unit_index") -> torch.Tensor:
    """``unit_index`` as a 1-D ``long`` tensor on ``device``; ``TypeError`` naming ``name`` for floats,
    bools or another number of dimensions (``.long()`` would truncate floats silently)."""
    idx = torch.as_tensor(unit_index, device=device)
    if idx.dim() != 1 or (idx.numel() and (idx.is_floating_point() or idx.dtype == torch.bool)):
        raise TypeError(f"{name} must be a 1-D sequence of ints, got {idx.dtype} of shape {tuple(idx.shape)}")
    return idx.long()
