"""SC session schema v1: validation of the exporter's MAT variables and the in-memory session.

MATLAB shapes (N neurons, T bins, K trials), as written by the predecessor's ``export_for_rnn.m``:
``firing_rates`` N x T x K (sp/s), ``neuron_type`` N x 1 (1 = classic -> E, 2 = interneuron -> I),
``n_trials``/``n_neurons``/``n_time_bins``/``bin_size_ms`` 1 x 1, ``input_*`` T x K,
``input_target_loc`` 4 x T x K, ``trial_*`` K x 1, optional ``time_axis`` 1 x T, ``neuron_ids``,
``brain_area`` N x 1, strings ``session_name``, ``export_date``, ``pipeline_version``.

Nothing is squeezed blindly: every array is checked against the shape the scalar counts imply, so
K = 1, N = 1 and T = 1 survive. MATLAB drops trailing singleton dimensions (a N x T x 1 array is
stored as N x T), so missing *trailing* axes of length 1 are restored. An array stored with another
axis order (writers that did not reverse axes for HDF5) is accepted when exactly one permutation
matches by size, with a note; if several do (e.g. K == T) it is an error rather than a guess.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from eirnn_fast.data.mat import read_mat

logger = logging.getLogger(__name__)

#: The 14 model inputs, in the predecessor's order (``construct_input_tensor``).
INPUT_CHANNELS: Tuple[str, ...] = (
    "fixation_on",
    "target_loc_1",
    "target_loc_2",
    "target_loc_3",
    "target_loc_4",
    "go",
    "reward_on",
    "eye_x",
    "eye_y",
    "is_face",
    "is_nonface",
    "is_bullseye",
    "high_salience",
    "low_salience",
)
#: MAT variables of the 2-D (T x K) input channels, in model order around the 4-row target_loc.
_INPUT_VARS_BEFORE = ("input_fixation_on",)
_INPUT_VARS_AFTER = (
    "input_go_signal",
    "input_reward_on",
    "input_eye_x",
    "input_eye_y",
    "input_is_face",
    "input_is_nonface",
    "input_is_bullseye",
    "input_high_salience",
    "input_low_salience",
)
REQUIRED_VARS: Tuple[str, ...] = (
    "firing_rates",
    "neuron_type",
    "n_trials",
    "n_neurons",
    "n_time_bins",
    "bin_size_ms",
    "input_fixation_on",
    "input_target_loc",
    *_INPUT_VARS_AFTER,
    "trial_reward",
    "trial_location",
)
CONDITION_VARS: Tuple[str, ...] = ("reward", "probability", "identity", "salience", "location")
SHORT_TRIAL_MS = 50.0
#: Outlier clipping percentile. The predecessor used 99.5, which at 25-ms bins is 2 spikes per bin
#: (80 sp/s) on the 08_13 session: it clips 0.43 % of all values and lowers the mean rate by 4 %.
#: 99.99 clips only real bursts (>= 10 spikes per bin there, 197 values). Pass 99.5 to be faithful.
DEFAULT_CLIP_PERCENTILE = 99.99  # trial_duration_ms below this is reported as an export quirk


@dataclass(frozen=True)
class SCSession:
    """One recorded SC session in Python axis order ``[trials, time, channels]``.

    Attributes:
        rates: ``[K, T, N]`` float32 sp/s (after the optional outlier clipping in ``preprocessing``).
        inputs: ``[K, T, 14]`` float32, channels :data:`INPUT_CHANNELS` (eye channels z-scored over
            the session as the predecessor did, zeros when absent).
        mask: ``[K, T]`` float32, 1 = valid bin (0 only where the file has NaN rates).
        neuron_type: ``[N]`` int64, 1 = E (classic), 2 = I (interneuron), file order (never sorted).
        conditions: per-trial labels ``reward``, ``probability``, ``identity``, ``salience``,
            ``location`` (those present in the file).
        notes: data quirks found while loading (reported, not fatal).
        preprocessing: what was done to the rates (clipping threshold and counts).
    """

    rates: np.ndarray
    inputs: np.ndarray
    mask: np.ndarray
    neuron_type: np.ndarray
    bin_size_ms: float
    time_ms: np.ndarray
    neuron_ids: np.ndarray
    brain_area: np.ndarray
    conditions: Dict[str, np.ndarray]
    trial_duration_ms: Optional[np.ndarray] = None
    meta: Dict[str, object] = field(default_factory=dict)
    notes: Tuple[str, ...] = ()
    preprocessing: Dict[str, object] = field(default_factory=dict)
    trial_index: Optional[np.ndarray] = None  # indices into the file's trials (after subset)

    # --- sizes
    def __len__(self) -> int:
        return int(self.rates.shape[0])

    @property
    def n_trials(self) -> int:
        return int(self.rates.shape[0])

    @property
    def n_time_bins(self) -> int:
        return int(self.rates.shape[1])

    @property
    def n_neurons(self) -> int:
        return int(self.rates.shape[2])

    @property
    def n_exc(self) -> int:
        return int((self.neuron_type == 1).sum())

    @property
    def n_inh(self) -> int:
        return int((self.neuron_type == 2).sum())

    @property
    def trial_reward(self) -> np.ndarray:
        return self.conditions["reward"]

    @property
    def counts(self) -> np.ndarray:
        """Spike counts per bin, ``rates * bin_size_ms / 1000``."""
        return self.rates * (self.bin_size_ms / 1000.0)

    # --- the predecessor's dataset API
    def get_all_trials(self, include_conditions: bool = False) -> dict:
        """``{'inputs': [K, T, 14], 'targets': [K, T, N] sp/s, 'mask': [K, T]}`` float32 tensors
        (plus int64 condition labels ``trial_<name>`` with ``include_conditions``)."""
        import torch

        out = {
            "inputs": torch.from_numpy(np.ascontiguousarray(self.inputs, dtype=np.float32)),
            "targets": torch.from_numpy(np.ascontiguousarray(self.rates, dtype=np.float32)),
            "mask": torch.from_numpy(np.ascontiguousarray(self.mask, dtype=np.float32)),
        }
        if include_conditions:
            for name, values in self.conditions.items():
                out[f"trial_{name}"] = torch.from_numpy(np.nan_to_num(values).astype(np.int64))
        return out

    def get_neuron_info(self) -> dict:
        exc = np.flatnonzero(self.neuron_type == 1)
        inh = np.flatnonzero(self.neuron_type == 2)
        return {
            "n_exc": int(exc.size),
            "n_inh": int(inh.size),
            "n_total": self.n_neurons,
            "exc_indices": exc,
            "inh_indices": inh,
            "neuron_type": self.neuron_type.copy(),
            "neuron_ids": self.neuron_ids.copy(),
        }

    def get_input_dim(self) -> int:
        return int(self.inputs.shape[2])

    def subset(self, indices: Sequence[int]) -> "SCSession":
        """The same session restricted to the given trials (in the given order)."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        base = self.trial_index if self.trial_index is not None else np.arange(self.n_trials)
        return replace(
            self,
            rates=self.rates[idx],
            inputs=self.inputs[idx],
            mask=self.mask[idx],
            conditions={k: v[idx] for k, v in self.conditions.items()},
            trial_duration_ms=None if self.trial_duration_ms is None else self.trial_duration_ms[idx],
            trial_index=base[idx],
        )

    def summary(self) -> dict:
        """JSON-ready description (shapes, rates, quirks)."""
        return {
            "session_name": self.meta.get("session_name", ""),
            "source": self.meta.get("source", ""),
            "format": self.meta.get("format", ""),
            "n_trials": self.n_trials,
            "n_time_bins": self.n_time_bins,
            "n_neurons": self.n_neurons,
            "n_exc": self.n_exc,
            "n_inh": self.n_inh,
            "neuron_type": self.neuron_type.tolist(),
            "bin_size_ms": self.bin_size_ms,
            "mean_rate": float(self.rates.mean()),
            "notes": list(self.notes),
            "preprocessing": self.preprocessing,
        }


# ----------------------------------------------------------------------------------------- helpers
def _scalar(data: dict, name: str) -> float:
    arr = np.asarray(data[name])
    if arr.size != 1 or arr.dtype.kind not in "biuf":
        raise ValueError(f"{name} must be a numeric scalar, got shape {arr.shape}")
    return float(arr.reshape(-1)[0])


def _count(data: dict, name: str) -> int:
    value = _scalar(data, name)
    if value != int(value) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value}")
    return int(value)


def _array(data: dict, name: str, expected: Tuple[int, ...], names: str) -> np.ndarray:
    """``data[name]`` as a float64 array of MATLAB shape ``expected`` (axes named by ``names``)."""
    arr = np.asarray(data[name])
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{name} must be numeric, got dtype {arr.dtype}")
    arr = arr.astype(np.float64, copy=False)
    want = tuple(int(s) for s in expected)
    if arr.ndim < len(want) and arr.shape == want[: arr.ndim] and all(s == 1 for s in want[arr.ndim :]):
        arr = arr.reshape(want)  # MATLAB drops trailing singleton dimensions
    if arr.shape == want:
        return arr
    if arr.ndim == len(want) and sorted(arr.shape) == sorted(want):
        perms = [p for p in itertools.permutations(range(arr.ndim)) if tuple(arr.shape[i] for i in p) == want]
        if len(perms) == 1:
            perm = perms[0]
            logger.warning(
                "%s stored as %s, expected %s (%s); transposed with axes %s", name, arr.shape, want, names, perm
            )
            return np.ascontiguousarray(arr.transpose(perm))
        raise ValueError(
            f"{name} has shape {arr.shape}, expected {want} ({names}); several axis orders match, refusing to guess"
        )
    raise ValueError(f"{name} has shape {arr.shape}, expected {want} ({names})")


def _vector(data: dict, name: str, length: int, what: str) -> np.ndarray:
    """An N x 1 or 1 x N MATLAB vector of the given length, as ``[length]``."""
    arr = np.asarray(data[name])
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{name} must be numeric, got dtype {arr.dtype}")
    if arr.ndim > 2 or arr.size != length or (arr.ndim == 2 and 1 not in arr.shape):
        raise ValueError(f"{name} has shape {arr.shape}, expected a vector of {length} ({what})")
    return arr.astype(np.float64, copy=False).reshape(-1)


def _zscore_or_zero(x: np.ndarray) -> Tuple[np.ndarray, bool]:
    if np.all(np.isnan(x)) or np.nanstd(x) < 1e-8:
        return np.zeros_like(x), False
    return (x - np.nanmean(x)) / (np.nanstd(x) + 1e-8), True


def session_from_variables(
    data: dict, source: str = "", clip_percentile: Optional[float] = DEFAULT_CLIP_PERCENTILE
) -> SCSession:
    """Validate MAT variables (MATLAB order, as :func:`eirnn_fast.data.mat.read_mat` returns them)
    and build an :class:`SCSession`. ``ValueError`` names the first missing or inconsistent variable."""
    missing = [name for name in REQUIRED_VARS if name not in data]
    if missing:
        raise ValueError(
            f"{source}: missing required variable(s) {', '.join(missing)}"
            if source
            else f"missing required variable(s) {', '.join(missing)}"
        )
    try:
        return _build(data, source, clip_percentile)
    except ValueError as exc:
        raise ValueError(f"{source}: {exc}" if source else str(exc)) from None


def _build(data: dict, source: str, clip_percentile: Optional[float]) -> SCSession:
    K, N, T = _count(data, "n_trials"), _count(data, "n_neurons"), _count(data, "n_time_bins")
    bin_ms = _scalar(data, "bin_size_ms")
    if not bin_ms > 0:
        raise ValueError(f"bin_size_ms must be positive, got {bin_ms}")
    notes: List[str] = []

    fr = _array(data, "firing_rates", (N, T, K), "n_neurons x n_time_bins x n_trials")
    rates = np.ascontiguousarray(fr.transpose(2, 1, 0))  # [K, T, N]
    nan = np.isnan(rates)
    if np.any(rates[~nan] < 0):
        raise ValueError("firing_rates has negative values")
    if np.isinf(rates).any():
        raise ValueError(f"firing_rates has {int(np.isinf(rates).sum())} infinite values")
    mask = (~nan.any(axis=2)).astype(np.float32)  # [K, T]
    if nan.any():
        notes.append(f"{int(nan.sum())} NaN firing-rate values set to 0 and masked")
        rates = np.nan_to_num(rates, nan=0.0)

    ntype = _vector(data, "neuron_type", N, "n_neurons")
    if not np.all(np.isin(ntype, (1, 2))):
        raise ValueError(
            f"neuron_type must contain only 1 (E) and 2 (I), got {sorted(set(ntype.tolist()) - {1.0, 2.0})}"
        )
    ntype = ntype.astype(np.int64)
    if (ntype == 1).all() or (ntype == 2).all():
        notes.append(f"all {N} neurons are of type {int(ntype[0])}")
    if N > 1 and np.any(np.diff(ntype) < 0):
        notes.append("neuron types are interleaved (not E-first); recorded neurons are mapped to units by type")

    channels: List[np.ndarray] = []
    for name in _INPUT_VARS_BEFORE:
        channels.append(_array(data, name, (T, K), "n_time_bins x n_trials").T)
    loc = _array(data, "input_target_loc", (4, T, K), "4 x n_time_bins x n_trials").transpose(2, 1, 0)  # [K, T, 4]
    channels.extend(loc[..., i] for i in range(4))
    for name in _INPUT_VARS_AFTER:
        ch = _array(data, name, (T, K), "n_time_bins x n_trials").T
        if name in ("input_eye_x", "input_eye_y"):
            ch, ok = _zscore_or_zero(ch)
            if not ok:
                notes.append(f"{name} is all zero/NaN (eye position not exported); channel kept as zeros")
        channels.append(ch)
    inputs = np.nan_to_num(np.stack(channels, axis=2)).astype(np.float32)  # [K, T, 14]

    conditions: Dict[str, np.ndarray] = {}
    for cname in CONDITION_VARS:
        var = f"trial_{cname}"
        if var in data:
            conditions[cname] = _vector(data, var, K, "n_trials")
    duration = _vector(data, "trial_duration_ms", K, "n_trials") if "trial_duration_ms" in data else None
    if duration is not None:
        short = int((duration < SHORT_TRIAL_MS).sum())
        if short:
            notes.append(
                f"{short} of {K} trials have trial_duration_ms < {SHORT_TRIAL_MS:g} ms "
                f"(min {duration.min():.1f}); kept (not turned into a mask)"
            )
    if T > 0:
        no_fix = int((inputs[:, :, 0].max(axis=1) <= 0).sum())
        if no_fix:
            notes.append(f"{no_fix} of {K} trials have no fixation_on bin")

    if "time_axis" in data:
        time_ms = _vector(data, "time_axis", T, "n_time_bins")
        if T > 1 and not np.allclose(np.diff(time_ms), bin_ms):
            notes.append(f"time_axis spacing is not bin_size_ms = {bin_ms:g}")
    else:
        time_ms = (np.arange(T) + 0.5) * bin_ms - 200.0
    neuron_ids = _vector(data, "neuron_ids", N, "n_neurons") if "neuron_ids" in data else np.arange(N, dtype=np.float64)
    brain_area = _vector(data, "brain_area", N, "n_neurons") if "brain_area" in data else np.ones(N)

    counts = rates * (bin_ms / 1000.0)
    if not np.allclose(counts, np.round(counts), atol=1e-6):
        notes.append("firing_rates * bin_size_ms / 1000 are not integer spike counts")

    meta = {k: data[k] for k in ("session_name", "export_date", "pipeline_version") if isinstance(data.get(k), str)}
    meta["source"] = source
    meta["format"] = data.get("__format__", "")

    preprocessing: Dict[str, object] = {"clip_percentile": clip_percentile}
    if clip_percentile is not None:
        rates, report = clip_outliers(rates, clip_percentile)
        preprocessing.update(report)
    for note in notes:
        logger.warning("%s: %s", Path(source).name if source else "session", note)
    return SCSession(
        rates=rates.astype(np.float32),
        inputs=inputs,
        mask=mask,
        neuron_type=ntype,
        bin_size_ms=bin_ms,
        time_ms=time_ms,
        neuron_ids=neuron_ids,
        brain_area=brain_area,
        conditions=conditions,
        trial_duration_ms=duration,
        meta=meta,
        notes=tuple(notes),
        preprocessing=preprocessing,
    )


def clip_outliers(rates: np.ndarray, percentile: float = 99.5) -> Tuple[np.ndarray, dict]:
    """Clip rates above the ``percentile`` of all values (the predecessor's Priority-3 step).

    Returns the clipped copy and a report ``{threshold, n_clipped, fraction_clipped, max_before}``.
    """
    if not 0 < percentile <= 100:
        raise ValueError(f"clip percentile must be in (0, 100], got {percentile}")
    rates = np.asarray(rates)
    threshold = float(np.percentile(rates, percentile)) if rates.size else 0.0
    over = rates > threshold
    n = int(over.sum())
    report = {
        "clip_threshold": threshold,
        "n_clipped": n,
        "fraction_clipped": n / max(rates.size, 1),
        "max_before": float(rates.max()) if rates.size else 0.0,
    }
    if n:
        logger.info("clipping %d values (%.3f%%) above %.1f sp/s", n, 100 * n / rates.size, threshold)
    return np.clip(rates, 0.0, threshold), report


def load_session(path, clip_percentile: Optional[float] = DEFAULT_CLIP_PERCENTILE) -> SCSession:
    """Load an exported SC session (``.mat`` v5 or v7.3) as an :class:`SCSession`.

    ``clip_percentile`` (default :data:`DEFAULT_CLIP_PERCENTILE` = 99.99; the predecessor used 99.5;
    ``None`` = raw rates) clips outliers;
    what was clipped is in ``session.preprocessing``. Raises ``ValueError`` naming the file and the
    missing/inconsistent variable for malformed files.
    """
    path = Path(path)
    data = read_mat(path)
    session = session_from_variables(data, source=str(path), clip_percentile=clip_percentile)
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    session.meta["sha256"] = sha
    return session
