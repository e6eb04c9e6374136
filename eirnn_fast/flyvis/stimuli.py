"""Visual stimuli rendered onto the hexagonal columns of the FlyVis eye.

A stimulus frame is one intensity in [0, 1] per column (grey = 0.5); all eight photoreceptor types
R1-R8 of a column receive the same intensity (no optics, no spectral or polarisation differences).
Sequences of ``length`` frames are drawn from four families (moving gratings, moving edges, full-field
flashes, spatio-temporally smoothed noise), each with its own random parameters; a dataset is a list
of sequences split into train and test **by sequence** (never within one).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Sequence, Tuple

import numpy as np
import torch

from eirnn_fast.flyvis.connectome import Connectome, hex_lattice, hex_to_cartesian

KINDS = ("grating", "edge", "flash", "noise")
GREY = 0.5


def column_xy(extent: int) -> np.ndarray:
    """Cartesian centres [C, 2] of the columns of the hexagon of radius ``extent`` (unit spacing)."""
    uv = hex_lattice(extent)
    x, y = hex_to_cartesian(uv[:, 0], uv[:, 1])
    return np.stack([x, y], 1)


def moving_grating(xy, length, dt, rng) -> Tuple[np.ndarray, Dict]:
    """Sinusoidal grating drifting along a random direction. Returns [length, C] and its parameters."""
    theta = rng.uniform(0, 2 * np.pi)
    period = rng.uniform(3.0, 12.0)  # columns
    speed = rng.uniform(2.0, 30.0)  # columns / s
    contrast = rng.uniform(0.3, 1.0)
    phase0 = rng.uniform(0, 2 * np.pi)
    proj = xy @ np.array([np.cos(theta), np.sin(theta)])
    t = np.arange(length)[:, None] * dt
    frames = GREY + 0.5 * contrast * np.sin(2 * np.pi * (proj[None] - speed * t) / period + phase0)
    return frames, dict(theta=theta, period=period, speed=speed, contrast=contrast)


def moving_edge(xy, length, dt, rng) -> Tuple[np.ndarray, Dict]:
    """An ON or OFF edge sweeping across the eye along a random direction."""
    theta = rng.uniform(0, 2 * np.pi)
    polarity = 1.0 if rng.random() < 0.5 else -1.0
    contrast = rng.uniform(0.3, 1.0)
    proj = xy @ np.array([np.cos(theta), np.sin(theta)])
    lo, hi = proj.min() - 1.0, proj.max() + 1.0
    speed = (hi - lo) / max(length * dt * rng.uniform(0.5, 1.0), 1e-9)
    pos = lo + speed * np.arange(length)[:, None] * dt
    frames = GREY + polarity * 0.5 * contrast * (proj[None] < pos)
    return frames, dict(theta=theta, polarity=polarity, contrast=contrast, speed=speed)


def flash(xy, length, dt, rng) -> Tuple[np.ndarray, Dict]:
    """Full-field ON or OFF flash: grey, then a step of random duration, then grey."""
    polarity = 1.0 if rng.random() < 0.5 else -1.0
    contrast = rng.uniform(0.3, 1.0)
    onset = int(rng.integers(0, max(length // 3, 1)))
    duration = int(rng.integers(max(length // 5, 1), max(length // 2, 2)))
    frames = np.full((length, len(xy)), GREY)
    frames[onset : onset + duration] += polarity * 0.5 * contrast
    return frames, dict(polarity=polarity, contrast=contrast, onset=onset, duration=duration)


def smoothed_noise(xy, length, dt, rng) -> Tuple[np.ndarray, Dict]:
    """Gaussian white noise smoothed in space (Gaussian kernel over column distance) and time."""
    from scipy.ndimage import gaussian_filter1d

    sigma_space = rng.uniform(0.5, 3.0)  # columns
    sigma_time = rng.uniform(0.5, 4.0)  # frames
    contrast = rng.uniform(0.3, 1.0)
    d2 = ((xy[:, None, :] - xy[None, :, :]) ** 2).sum(-1)
    k = np.exp(-0.5 * d2 / sigma_space**2)
    k /= k.sum(1, keepdims=True)
    white = rng.standard_normal((length, len(xy)))
    sm = gaussian_filter1d(white @ k.T, sigma_time, axis=0, mode="nearest")
    sm /= max(sm.std(), 1e-9)
    frames = GREY + 0.5 * contrast * np.tanh(sm / 2.0)
    return frames, dict(sigma_space=sigma_space, sigma_time=sigma_time, contrast=contrast)


_RENDER = {"grating": moving_grating, "edge": moving_edge, "flash": flash, "noise": smoothed_noise}


@dataclass
class StimulusSet:
    """Sequences of column frames: frames [S, L, C] float32 in [0, 1]; kind / params per sequence;
    ``train`` / ``test`` are sequence indices (disjoint)."""

    frames: np.ndarray
    kinds: List[str]
    params: List[Dict]
    train: np.ndarray
    test: np.ndarray
    extent: int
    info: Dict = field(default_factory=dict)

    @property
    def n_sequences(self) -> int:
        return self.frames.shape[0]

    def concat(self, indices: Sequence[int]) -> np.ndarray:
        """Frames of the given sequences back to back: [len(indices) * L, C]."""
        return self.frames[np.asarray(indices, dtype=np.int64)].reshape(-1, self.frames.shape[2])


def make_stimuli(
    extent: int,
    n_sequences: int,
    length: int = 50,
    *,
    dt: float = 0.02,
    seed: int = 0,
    kinds: Sequence[str] = KINDS,
    test_fraction: float = 0.2,
) -> StimulusSet:
    """Draw ``n_sequences`` sequences of ``length`` frames, kinds cycling through ``kinds`` in a seeded
    random order, and split them by sequence into train / test (``test_fraction`` of the sequences)."""
    if n_sequences < 1 or length < 1:
        raise ValueError(f"need n_sequences >= 1 and length >= 1, got {n_sequences}, {length}")
    bad = [k for k in kinds if k not in _RENDER]
    if bad or not kinds:
        raise ValueError(f"unknown stimulus kinds {bad}; choose from {KINDS}")
    if not 0.0 <= test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in [0, 1), got {test_fraction}")
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x5717]))
    xy = column_xy(extent)
    order = [kinds[i % len(kinds)] for i in range(n_sequences)]
    rng.shuffle(order)
    frames = np.empty((n_sequences, length, len(xy)), dtype=np.float32)
    params = []
    for s, kind in enumerate(order):
        f, p = _RENDER[kind](xy, length, dt, rng)
        frames[s] = np.clip(f, 0.0, 1.0)
        params.append(p)
    perm = rng.permutation(n_sequences)
    n_test = int(round(test_fraction * n_sequences))
    if test_fraction > 0 and n_sequences > 1:
        n_test = min(max(n_test, 1), n_sequences - 1)
    test = np.sort(perm[:n_test])
    train = np.sort(perm[n_test:])
    return StimulusSet(
        frames,
        order,
        params,
        train,
        test,
        extent,
        info=dict(seed=seed, length=length, dt=dt, test_fraction=test_fraction),
    )


def columns_to_neurons(connectome: Connectome, frames) -> torch.Tensor:
    """Expand column frames [..., C] to the input current of every neuron [..., N] (zero off R1-R8)."""
    frames = torch.as_tensor(frames)
    if frames.shape[-1] != connectome.n_columns:
        raise ValueError(
            f"stimulus has {frames.shape[-1]} columns; extent {connectome.extent} has {connectome.n_columns}"
        )
    out = frames.new_zeros(frames.shape[:-1] + (connectome.n_neurons,))
    idx = connectome.input_indices
    out[..., idx] = frames[..., connectome.column[idx]]
    return out
