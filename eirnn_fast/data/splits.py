"""Trial splits, stratified by a condition label (the predecessor stratified by reward)."""

from __future__ import annotations

from typing import Dict, List, Optional, Tuple

import numpy as np


def trial_labels(session, stratify_by: Optional[str]) -> np.ndarray:
    """``[K]`` float labels of ``session.conditions[stratify_by]`` (NaN -> -1; zeros for None or an
    unknown label): the strata of the splits and the groups of condition-wise trial matching."""
    n = len(session)
    if stratify_by is None or stratify_by not in session.conditions:
        return np.zeros(n)
    return np.nan_to_num(np.asarray(session.conditions[stratify_by], dtype=np.float64), nan=-1.0)


def train_val_split(
    session, val_fraction: float = 0.2, stratify_by: Optional[str] = "reward", seed: int = 42
) -> Tuple[List[int], List[int]]:
    """``(train_indices, val_indices)`` exactly as the predecessor: for each label value (ascending),
    shuffle that stratum's trial indices with ``np.random.seed(seed)``'s stream and put the first
    ``int(n * val_fraction)`` into validation. Uses a private ``RandomState(seed)`` (same numbers, no
    global side effect). 1043 trials -> 835 / 208 on the seeds' session."""
    if not 0 <= val_fraction < 1:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    rng = np.random.RandomState(seed)
    labels = trial_labels(session, stratify_by)
    indices = np.arange(len(session))
    train: List[int] = []
    val: List[int] = []
    for label in np.unique(labels):
        idx = indices[labels == label]
        rng.shuffle(idx)
        n_val = int(len(idx) * val_fraction)
        val.extend(int(i) for i in idx[:n_val])
        train.extend(int(i) for i in idx[n_val:])
    return train, val


def train_val_test_split(
    session,
    val_fraction: float = 0.15,
    test_fraction: float = 0.15,
    stratify_by: Optional[str] = "reward",
    seed: int = 42,
) -> Dict[str, List[int]]:
    """``{'train', 'val', 'test'}`` sorted trial indices, stratified like :func:`train_val_split`:
    per stratum, the first ``int(n * test_fraction)`` shuffled trials go to test, the next
    ``int(n * val_fraction)`` to validation, the rest to training. Model selection uses ``val``;
    final numbers are reported on ``test``, which training never sees."""
    if val_fraction < 0 or test_fraction < 0 or val_fraction + test_fraction >= 1:
        raise ValueError(f"need val_fraction, test_fraction >= 0 with sum < 1, got {val_fraction}, {test_fraction}")
    rng = np.random.RandomState(seed)
    labels = trial_labels(session, stratify_by)
    indices = np.arange(len(session))
    out: Dict[str, List[int]] = {"train": [], "val": [], "test": []}
    for label in np.unique(labels):
        idx = indices[labels == label]
        rng.shuffle(idx)
        n_test = int(len(idx) * test_fraction)
        n_val = int(len(idx) * val_fraction)
        out["test"].extend(int(i) for i in idx[:n_test])
        out["val"].extend(int(i) for i in idx[n_test : n_test + n_val])
        out["train"].extend(int(i) for i in idx[n_test + n_val :])
    for key in out:
        out[key].sort()
    if not out["train"]:
        raise ValueError(f"the split leaves no training trials ({len(session)} trials)")
    return out
