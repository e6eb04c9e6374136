"""Ground-truth FlyVis simulator (the data generator of flyvis-gnn, re-implemented).

    tau_i dv_i/dt = -v_i + V_rest_i + sum_j W_ij ReLU(v_j) + I_i

integrated with explicit Euler at ``dt`` (s). Per frame t the state x[t] is recorded *before* the
update, the target y[t] = dv/dt is the **clean** right-hand side at x[t], and the next state is
x[t+1] = x[t] + dt * y[t] + noise_model_level * N(0, 1) (noise per frame, not scaled by sqrt(dt),
as in flyvis-gnn). I_i is the stimulus intensity of neuron i's column for R1-R8, 0 elsewhere.
The initial state is the noise-free steady state under a grey (0.5) stimulus after ``t_pre`` s.
tau is used as given (``tau_clamp="none"``, flyvis-gnn's ODE: with 51 of 65 trained types at
tau < dt the Euler factor 1 - dt / tau is slightly negative, still stable for tau > dt / 2);
``tau_clamp="dt"`` integrates with ``max(tau, dt)`` as flyvis's own ``Network`` does.

Several independent streams (batch B) are integrated together as the F = B columns of the
message-passing op ``eirnn_fast.ops.edge_message_passing`` (one sparse pass per frame for all
streams); without that op an ``index_add_`` implementation is used.
"""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple

import numpy as np
import torch

from eirnn_fast.atomic import atomic_write_json
from eirnn_fast.flyvis import plots
from eirnn_fast.flyvis.connectome import Connectome, load_connectome
from eirnn_fast.flyvis.parameters import DEFAULT_PARAMS, FlyVisParameters, resolve_parameters, weight_statistics
from eirnn_fast.flyvis.stimuli import GREY, KINDS, make_stimuli
from eirnn_fast.ops import EdgeGraph, _backend, edge_message_passing

_BACKENDS = ("auto", "fused", "reference")
#: "none": integrate the raw tau (flyvis-gnn's ODE, the seeds' data); "dt": 1 / max(tau, dt) as flyvis does
TAU_CLAMPS = ("none", "dt")


# --------------------------------------------------------------------------------------------------
# aggregation: sum_j W_ij h_j through the message-passing op, index_add_ fallback


def _fused_op():
    """(EdgeGraph, edge_message_passing) when the op's compiled CPU kernel is available, else None
    (the op itself always imports; without ``_C`` it would run its ``index_add_`` reference, slower
    than the ``torch.sparse`` CSR fallback)."""
    if _backend.choose("flyvis_aggregate", "auto", torch.device("cpu")) != "fused":
        return None
    return EdgeGraph, edge_message_passing


def fused_available() -> bool:
    return _fused_op() is not None


def _index_add(src, dst, num_dst, edge_weight, node_values):
    # out[i, f] = sum_{e: dst[e] = i} w[e] * h[src[e], f]
    out = node_values.new_zeros((num_dst, node_values.shape[1]))
    return out.index_add_(0, dst, node_values.index_select(0, src) * edge_weight[:, None])


class _Aggregator:
    """Holds the graph once for repeated calls: the op's EdgeGraph when importable, else a CSR
    (rows = dst) for ``torch.sparse`` SpMM ("auto") or the raw index tensors for ``index_add_``
    ("reference")."""

    def __init__(self, connectome: Connectome, backend: str = "auto"):
        if backend not in _BACKENDS:
            raise ValueError(f"backend must be one of {_BACKENDS}, got {backend!r}")
        self.src, self.dst, self.n = connectome.src, connectome.dst, connectome.n_neurons
        path = _backend.choose("flyvis_aggregate", backend, torch.device("cpu"))
        fused = _fused_op() if path == "fused" else None
        self.fused = fused
        self.op_backend = "fused" if backend == "fused" else "auto"
        self.graph = fused[0](self.src, self.dst, self.n, self.n) if fused is not None else None
        self.use_csr = path == "sparse_csr"
        if fused is not None:
            self.name = "edge_message_passing"
        elif self.use_csr:
            self.name = "torch_sparse_csr"
            self.perm = torch.argsort(self.dst * self.n + self.src)
            self.crow = torch.zeros(self.n + 1, dtype=torch.int64)
            self.crow[1:] = torch.cumsum(torch.bincount(self.dst, minlength=self.n), 0)
            self.col = self.src[self.perm].contiguous()
            self._w_key = None
            self._csr = None
        else:
            self.name = "index_add"

    def csr(self, edge_weight: torch.Tensor) -> torch.Tensor:
        key = (edge_weight.data_ptr(), edge_weight.dtype, edge_weight._version)
        if key != self._w_key:
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "sparse CSR support is in beta"
                self._csr = torch.sparse_csr_tensor(self.crow, self.col, edge_weight[self.perm], size=(self.n, self.n))
            self._w_key = key
        return self._csr

    def __call__(self, edge_weight: torch.Tensor, node_values: torch.Tensor) -> torch.Tensor:
        return _aggregate(self, edge_weight, node_values)


def _aggregate(agg: _Aggregator, edge_weight: torch.Tensor, node_values: torch.Tensor) -> torch.Tensor:
    """[N, F] = sum over edges of edge_weight[e] * node_values[src[e], :] into dst[e].

    The message-passing op ``eirnn_fast.ops.edge_message_passing`` when importable (weights in the
    original edge order); otherwise a forward-only ``torch.sparse`` CSR SpMM (backend "auto"; ~40x
    faster than ``index_add_`` on one CPU thread at extent 8) or ``index_add_`` ("reference")."""
    if agg.fused is not None:
        return agg.fused[1](agg.graph, edge_weight, node_values, backend=agg.op_backend)
    if agg.use_csr:
        return agg.csr(edge_weight) @ node_values
    return _index_add(agg.src, agg.dst, agg.n, edge_weight, node_values)


# --------------------------------------------------------------------------------------------------
# simulation


@dataclass
class SimulationResult:
    """x [B, T, N] voltages (state before each update), y [B, T, N] clean dv/dt at x, stimulus
    [B, T, C] column intensities (or [B, T, N] when given per neuron). Unbatched input gives no B."""

    x: torch.Tensor
    y: torch.Tensor
    stimulus: torch.Tensor
    info: Dict = field(default_factory=dict)


def _stimulus_to_input(connectome: Connectome, stim: torch.Tensor) -> Tuple[torch.Tensor, str]:
    # stim [B, T, C] or [B, T, N] -> callable-free tensors; returns the mode
    last = stim.shape[-1]
    if last == connectome.n_columns:
        return stim, "columns"
    if last == connectome.n_neurons:
        return stim, "neurons"
    raise ValueError(
        f"stimulus last dimension must be {connectome.n_columns} (columns at extent "
        f"{connectome.extent}) or {connectome.n_neurons} (neurons), got {last}"
    )


def _check_params(connectome: Connectome, params: FlyVisParameters):
    n, e = connectome.n_neurons, connectome.n_edges
    for name, t, size in (("tau", params.tau, n), ("V_rest", params.V_rest, n), ("W", params.W, e)):
        if t.numel() != size:
            raise ValueError(
                f"params.{name} has {t.numel()} values, connectome (extent {connectome.extent}) needs {size}"
            )
    if (params.tau <= 0).any():
        raise ValueError("params.tau must be > 0")


def simulate_iter(
    connectome: Connectome,
    params: FlyVisParameters,
    stimulus,
    *,
    dt: float = 0.02,
    noise_model_level: float = 0.05,
    seed: int = 0,
    backend: str = "auto",
    t_pre: float = 2.0,
    initial_state: Optional[torch.Tensor] = None,
    block: int = 1000,
    dtype=torch.float32,
    progress: bool = False,
    tau_clamp: str = "none",
) -> Iterator[Tuple[int, torch.Tensor, torch.Tensor]]:
    """Generator form of :func:`simulate`: yields (t0, x [B, tb, N], y [B, tb, N]) blocks of at most
    ``block`` frames, so long runs never hold all frames in memory. ``stimulus`` [B, T, C|N]."""
    stim = torch.as_tensor(stimulus)
    if stim.dim() != 3:
        raise ValueError(f"stimulus must be [B, T, C] here, got shape {tuple(stim.shape)}")
    stim, mode = _stimulus_to_input(connectome, stim)
    _check_params(connectome, params)
    if not (dt > 0 and math.isfinite(dt)):
        raise ValueError(f"dt must be > 0, got {dt}")
    if noise_model_level < 0:
        raise ValueError(f"noise_model_level must be >= 0, got {noise_model_level}")
    B, T = stim.shape[0], stim.shape[1]
    N = connectome.n_neurons
    agg = _Aggregator(connectome, backend)
    W = params.W.to(dtype)
    if tau_clamp not in TAU_CLAMPS:
        raise ValueError(f"tau_clamp must be one of {TAU_CLAMPS}, got {tau_clamp!r}")
    tau = params.tau.to(dtype)[:, None]  # [N, 1]
    if tau_clamp == "dt":  # flyvis's Network integrates with 1 / max(tau, dt); flyvis-gnn's ODE does not clamp
        tau = tau.clamp(min=dt)
    v_rest = params.V_rest.to(dtype)[:, None]  # [N, 1]
    inp_idx = connectome.input_indices
    inp_col = connectome.column[inp_idx]

    def current(frame):  # frame [B, C|N] -> I [N, B]
        if mode == "neurons":
            return frame.to(dtype).t().contiguous()
        out = torch.zeros(N, B, dtype=dtype)
        out[inp_idx] = frame.to(dtype).t()[inp_col]
        return out

    def rhs(v, I):  # v, I [N, B] -> dv/dt [N, B]
        return (-v + v_rest + agg(W, torch.relu(v)) + I) / tau

    if initial_state is not None:
        v = torch.as_tensor(initial_state, dtype=dtype).reshape(-1, N).t().expand(N, B).clone()
    else:
        v = v_rest.expand(N, B).clone()
        if mode == "columns":
            grey = current(torch.full((B, connectome.n_columns), GREY))
        else:
            grey = torch.zeros(N, B, dtype=dtype)
            grey[inp_idx] = GREY
        for _ in range(int(round(t_pre / dt))):
            v = v + dt * rhs(v, grey)
    gen = torch.Generator().manual_seed(int(seed))
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=T, desc=f"simulate B={B}", unit="frame", leave=False)
    for t0 in range(0, T, block):
        tb = min(block, T - t0)
        xs = torch.empty(B, tb, N, dtype=dtype)
        ys = torch.empty(B, tb, N, dtype=dtype)
        for k in range(tb):
            dv = rhs(v, current(stim[:, t0 + k]))
            xs[:, k] = v.t()
            ys[:, k] = dv.t()
            v = v + dt * dv
            if noise_model_level > 0:
                v = v + noise_model_level * torch.randn(N, B, generator=gen, dtype=dtype)
        if bar is not None:
            bar.update(tb)
        yield t0, xs, ys
    if bar is not None:
        bar.close()


def simulate(
    connectome: Connectome,
    params: FlyVisParameters,
    stimulus,
    dt: float = 0.02,
    noise_model_level: float = 0.05,
    seed: int = 0,
    backend: str = "auto",
    *,
    t_pre: float = 2.0,
    initial_state: Optional[torch.Tensor] = None,
    dtype=torch.float32,
    progress: bool = False,
    tau_clamp: str = "none",
) -> SimulationResult:
    """Integrate the FlyVis model over a stimulus (see the module docstring for the exact scheme).

    stimulus: [T, C] column intensities (C = columns of the extent; R1-R8 of a column get the same
    value), [T, N] input current per neuron, or a batch [B, T, C|N] of independent streams (each
    with its own noise, integrated together as F = B columns of the message-passing op).
    backend: "auto" (message-passing op when importable, else torch.sparse CSR SpMM), "fused" (op
    required), "reference" (index_add_, the oracle). Returns x, y [(B,) T, N] and the stimulus as given. Deterministic in
    ``seed`` on a given backend.
    """
    stim = torch.as_tensor(stimulus)
    batched = stim.dim() == 3
    if stim.dim() not in (2, 3):
        raise ValueError(f"stimulus must be [T, C], [T, N] or [B, T, C|N], got shape {tuple(stim.shape)}")
    stim3 = stim if batched else stim[None]
    if stim3.shape[1] == 0:  # torch.cat below would fail with "expected a non-empty list"
        raise ValueError(f"stimulus has T = 0 frames (shape {tuple(stim.shape)}); simulate needs at least one frame")
    t_start = time.perf_counter()
    xs, ys = [], []
    backend_used = _Aggregator(connectome, backend).name
    for _, x, y in simulate_iter(
        connectome,
        params,
        stim3,
        dt=dt,
        noise_model_level=noise_model_level,
        seed=seed,
        backend=backend,
        t_pre=t_pre,
        initial_state=initial_state,
        dtype=dtype,
        progress=progress,
        tau_clamp=tau_clamp,
    ):
        xs.append(x)
        ys.append(y)
    x = torch.cat(xs, 1)
    y = torch.cat(ys, 1)
    info = dict(
        dt=dt,
        noise_model_level=noise_model_level,
        seed=seed,
        aggregation=backend_used,
        wall_s=time.perf_counter() - t_start,
    )
    if not batched:
        x, y = x[0], y[0]
    return SimulationResult(x, y, stim, info)


# --------------------------------------------------------------------------------------------------
# datasets


@dataclass
class GenerateConfig:
    """What ``generate_dataset`` writes. Frames are split into ``n_streams`` continuous streams per
    split (each starts from the grey steady state), integrated together."""

    extent: int = 8
    n_frames: int = 64_000  # training frames
    n_test_frames: int = 8_000  # held-out frames (disjoint stimulus sequences)
    sequence_length: int = 50
    n_streams: int = 8
    dt: float = 0.02
    noise_model_level: float = 0.05
    kinds: Tuple[str, ...] = KINDS
    chunk_frames: int = 1000
    # ground truth: "flyvis:flow/0000/000" (the trained network flyvis-gnn simulates), "sampled"
    # (sample_parameters(seed)) or an npz path (load_parameters); see parameters.resolve_parameters
    params: str = DEFAULT_PARAMS
    tau_clamp: str = "none"  # "none" (flyvis-gnn's ODE, which made the seeds' data) or "dt" (flyvis: max(tau, dt))
    params_path: Optional[str] = None  # old name of `params` (an npz path); wins when set
    backend: str = "auto"
    plots: bool = True
    progress: bool = True

    # not fields (no annotation): the flags of `eirnn-fast flyvis generate` (eirnn_fast.configs.add_flags)
    CONFIG_HELP = {
        "extent": "hex lattice radius (8: 13,741 neurons)",
        "n_frames": "training frames",
        "n_test_frames": "held-out frames (other sequences)",
        "sequence_length": "frames per stimulus sequence",
        "n_streams": "parallel streams integrated together",
        "dt": "Euler step (s)",
        "noise_model_level": "process noise per frame: x += level * N(0, 1)",
        "kinds": "stimulus kinds the sequences are drawn from",
        "chunk_frames": "frames per chunk file",
        "params": "ground truth: flyvis:flow/0000/000 (the trained network the seeds simulate, shipped), "
        "'sampled' (synthetic with its statistics, drawn from --seed) or an npz with tau, V_rest, W",
        "tau_clamp": "'none': integrate the raw tau (flyvis-gnn's ODE); 'dt': max(tau, dt) as flyvis",
        "params_path": "old name of --params (an npz path); wins when given",
        "backend": "message-passing op: fused kernel, reference, or auto",
        "plots": "write the dataset's plots",
        "progress": "progress bars (--quiet: off)",
    }
    CONFIG_CHOICES = {"tau_clamp": TAU_CLAMPS, "backend": _BACKENDS, "kinds": KINDS}

    def __post_init__(self):
        self.validate()

    def validate(self) -> "GenerateConfig":
        """Every value checked before anything is simulated or written (``ValueError`` naming the field)."""
        for name in ("extent", "n_frames", "n_streams", "sequence_length", "chunk_frames"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if isinstance(self.n_test_frames, bool) or not isinstance(self.n_test_frames, int) or self.n_test_frames < 0:
            raise ValueError(f"n_test_frames must be a non-negative integer, got {self.n_test_frames!r}")
        if not (isinstance(self.dt, (int, float)) and math.isfinite(self.dt) and self.dt > 0):
            raise ValueError(f"dt must be > 0 (s), got {self.dt!r}")
        lvl = self.noise_model_level
        if not (isinstance(lvl, (int, float)) and math.isfinite(lvl) and lvl >= 0):
            raise ValueError(f"noise_model_level must be a finite number >= 0, got {lvl!r}")
        if self.tau_clamp not in TAU_CLAMPS:
            raise ValueError(f"tau_clamp must be one of {TAU_CLAMPS}, got {self.tau_clamp!r}")
        if self.backend not in _BACKENDS:
            raise ValueError(f"backend must be one of {_BACKENDS}, got {self.backend!r}")
        return self


def _streams(frames: np.ndarray, n_frames: int, n_streams: int) -> np.ndarray:
    # frames [M, C] (sequences back to back) -> [n_streams, n_frames / n_streams, C]
    per = n_frames // n_streams
    return frames[: per * n_streams].reshape(n_streams, per, -1)


def generate_dataset(config: GenerateConfig, seed: int, out_dir) -> Dict:
    """Simulate a dataset and write it to ``out_dir``: ``params.npz`` (ground truth), chunk files
    ``{split}_s{stream}_c{chunk}.npz`` with ``x``, ``y`` [frames, N] float32 and ``stimulus``
    [frames, C] (column intensities; a neuron's input is ``stimulus[:, column[n]]`` for R1-R8),
    ``connectome.npz`` (src, dst, type_index, u, v, column, input_indices), ``metadata.json`` and
    plots. Everything is regenerated from ``seed`` (parameters, stimuli, noise)."""
    out = Path(out_dir)
    cfg = config
    if cfg.n_streams < 1 or cfg.n_frames < cfg.n_streams:
        raise ValueError(f"need n_streams >= 1 and n_frames >= n_streams, got {cfg.n_streams}, {cfg.n_frames}")
    for name in ("n_frames", "n_test_frames"):
        if getattr(cfg, name) % cfg.n_streams:
            raise ValueError(
                f"{name}={getattr(cfg, name)} is not a multiple of n_streams={cfg.n_streams} "
                "(each stream gets the same number of frames)"
            )
    done = finished_dataset(out, cfg, seed)
    if done is not None:
        if cfg.progress:
            print(f"already finished, loaded from {out / 'metadata.json'}", file=sys.stderr)
        return done
    out.mkdir(parents=True, exist_ok=True)
    # metadata.json marks a complete dataset: it goes first and comes back last (atomically), so a
    # killed generation is never read as complete, not even as the earlier dataset of this folder
    (out / "metadata.json").unlink(missing_ok=True)
    t_start = time.perf_counter()
    con = load_connectome(cfg.extent)
    params = resolve_parameters(cfg.params_path or cfg.params, con, seed)
    params.save(out / "params.npz")
    np.savez(
        out / "connectome.npz",
        src=con.src.numpy(),
        dst=con.dst.numpy(),
        type_index=con.type_index.numpy(),
        u=con.u.numpy(),
        v=con.v.numpy(),
        column=con.column.numpy(),
        input_indices=con.input_indices.numpy(),
        sign=con.sign.numpy(),
        syn_count=con.syn_count.numpy(),
        cell_type=np.array(con.cell_type),
    )
    test_frac = cfg.n_test_frames / float(cfg.n_frames + cfg.n_test_frames)
    n_seq = math.ceil((cfg.n_frames + cfg.n_test_frames) / cfg.sequence_length) + 2
    n_seq = max(n_seq, math.ceil(cfg.n_frames / ((1 - test_frac) * cfg.sequence_length)) + 2)
    if cfg.n_test_frames:
        n_seq = max(n_seq, math.ceil(cfg.n_test_frames / (test_frac * cfg.sequence_length)) + 2)
    stim = make_stimuli(
        cfg.extent, n_seq, cfg.sequence_length, dt=cfg.dt, seed=seed, kinds=cfg.kinds, test_fraction=test_frac
    )
    chunks: List[Dict] = []
    timing = {}
    for split, seqs, n_frames, sim_seed in (
        ("train", stim.train, cfg.n_frames, 2 * seed),
        ("test", stim.test, cfg.n_test_frames, 2 * seed + 1),
    ):
        if n_frames == 0:
            continue
        n_str = min(cfg.n_streams, n_frames)
        frames = stim.concat(seqs)
        if frames.shape[0] < n_frames:
            raise RuntimeError(f"{split}: {frames.shape[0]} stimulus frames for {n_frames} requested")
        streams = _streams(frames, n_frames, n_str)  # [S, T, C]
        seq_id = np.repeat(np.asarray(seqs), cfg.sequence_length)[: streams.shape[0] * streams.shape[1]]
        seq_id = seq_id.reshape(streams.shape[0], -1)
        t0 = time.perf_counter()
        for start, x, y in simulate_iter(
            con,
            params,
            torch.from_numpy(streams),
            dt=cfg.dt,
            noise_model_level=cfg.noise_model_level,
            seed=sim_seed,
            backend=cfg.backend,
            block=cfg.chunk_frames,
            progress=cfg.progress,
            tau_clamp=cfg.tau_clamp,
        ):
            for s in range(streams.shape[0]):
                name = f"{split}_s{s:02d}_c{start // cfg.chunk_frames:04d}.npz"
                tb = x.shape[1]
                np.savez(
                    out / name,
                    x=x[s].numpy(),
                    y=y[s].numpy(),
                    stimulus=streams[s, start : start + tb],
                    sequence=seq_id[s, start : start + tb],
                )
                chunks.append(dict(file=name, split=split, stream=s, start=start, n_frames=tb))
            if not np.isfinite(x.numpy()).all():
                raise FloatingPointError(f"{split}: non-finite voltages in frames {start}..{start + x.shape[1]}")
        timing[f"{split}_simulate_s"] = time.perf_counter() - t0
    meta = dict(
        format="eirnn_fast.flyvis dataset v1",
        seed=seed,
        config=_config_record(cfg),
        connectome=con.summary(),
        aggregation=_Aggregator(con, cfg.backend).name,
        equation="tau dv/dt = -v + V_rest + sum_j W_ij ReLU(v_j) + I; x[t+1] = x[t] + dt*y[t] + noise*N(0,1)",
        chunks=chunks,
        train_sequences=stim.train.tolist(),
        test_sequences=stim.test.tolist(),
        stimulus_kinds=stim.kinds,
        parameter_info=params.info,
        weight_statistics=weight_statistics(con, params.W, spectral=con.n_neurons <= 20000),
        timing={**timing, "total_s": time.perf_counter() - t_start},
        torch=torch.__version__,
    )
    if cfg.plots:
        first = np.load(out / chunks[0]["file"])
        meta["plots"] = plots.dataset_plots(con, first["x"], first["stimulus"], out)
    atomic_write_json(out / "metadata.json", meta, indent=1, default=float)
    return meta


def _config_record(cfg: GenerateConfig) -> Dict:
    """The config as metadata.json stores it (JSON types: tuples are lists)."""
    return json.loads(json.dumps({**asdict(cfg), "kinds": list(cfg.kinds)}, default=float))


#: GenerateConfig fields that change no number of the dataset
_GENERATE_FREE_KEYS = ("plots", "progress")


def finished_dataset(out_dir, config: GenerateConfig, seed: int) -> Optional[Dict]:
    """metadata.json of a complete dataset in ``out_dir`` generated from ``config`` and ``seed`` (every
    chunk file present), else None: ``generate_dataset`` then regenerates it."""
    out = Path(out_dir)
    try:
        meta = json.loads((out / "metadata.json").read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(meta, dict) or meta.get("seed") != seed:
        return None
    stored = {k: v for k, v in (meta.get("config") or {}).items() if k not in _GENERATE_FREE_KEYS}
    wanted = {k: v for k, v in _config_record(config).items() if k not in _GENERATE_FREE_KEYS}
    if stored != wanted or not all((out / c["file"]).is_file() for c in meta.get("chunks", [])):
        return None
    return meta


def load_dataset(out_dir, split: str = "train", stream: Optional[int] = None) -> Dict[str, np.ndarray]:
    """Concatenate the chunks of one split (all streams back to back, or one stream) into arrays."""
    out = Path(out_dir)
    meta = json.loads((out / "metadata.json").read_text())
    sel = [c for c in meta["chunks"] if c["split"] == split and (stream is None or c["stream"] == stream)]
    sel.sort(key=lambda c: (c["stream"], c["start"]))
    if not sel:
        raise ValueError(
            f"{out} has no chunks for split {split!r}" + (f", stream {stream}" if stream is not None else "")
        )
    parts = [np.load(out / c["file"]) for c in sel]
    return {k: np.concatenate([p[k] for p in parts]) for k in ("x", "y", "stimulus", "sequence")}
