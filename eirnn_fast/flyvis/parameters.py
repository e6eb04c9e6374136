"""Ground-truth parameters of the FlyVis model: per-type tau and V_rest, per type-pair synapse strengths.

Three sources, chosen by one spec string (:func:`resolve_parameters`, ``eirnn-fast flyvis generate --params``):

* ``"flyvis:flow/0000/000"`` (the default ground truth): the trained flyvis network that
  ``saalfeldlab/flyvis-gnn`` simulates its data from (member 000 of the "flow" ensemble of Lappalainen
  et al., Nature 2024), shipped in ``data/flow_0000_000/`` with its licences and provenance and mapped
  onto this package's connectome by key (:func:`load_pretrained`);
* ``"sampled"``: :func:`sample_parameters` draws synthetic ones with that network's statistics (51 of 65
  types with tau in 0.0194-0.0200 s, the rest up to 0.32 s; V_rest mean 0.51, std 0.16 in [0, 0.8];
  W = sign x count x strength with median |W| 0.030, spectral radius 1.7), e.g. for several ground truths
  (seed 003's four models are other ensemble members, which are not public);
* a path: :func:`load_parameters` reads user-supplied values from an npz.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Optional, Union

import numpy as np
import torch

from eirnn_fast.flyvis.connectome import Connectome, load_connectome


@dataclass(eq=False)
class FlyVisParameters:
    """Ground truth of one network. Per-neuron / per-edge tensors are float32 (CPU).

    tau [N] (s), V_rest [N], W [E] (original edge order, W[e] acts on src[e] -> dst[e]).
    tau_type / V_rest_type [n_types] and strength [n_pairs] are set when the parameters are per type.
    """

    tau: torch.Tensor
    V_rest: torch.Tensor
    W: torch.Tensor
    tau_type: Optional[torch.Tensor] = None
    V_rest_type: Optional[torch.Tensor] = None
    strength: Optional[torch.Tensor] = None
    info: Dict = field(default_factory=dict)

    def save(self, path) -> None:
        """npz with the per-neuron/edge arrays (and per-type ones when present); readable by load_parameters."""
        arrays = {"tau": self.tau.numpy(), "V_rest": self.V_rest.numpy(), "W": self.W.numpy()}
        for name in ("tau_type", "V_rest_type", "strength"):
            val = getattr(self, name)
            if val is not None:
                arrays[name] = val.numpy()
        np.savez(path, **arrays)


def weight_statistics(connectome: Connectome, W: torch.Tensor, spectral: bool = True) -> Dict[str, float]:
    """Summary of an edge-weight vector: sign fractions, |W| percentiles, range, spectral radius."""
    w = W.detach().double().numpy()
    a = np.abs(w)
    out = {
        "frac_pos": float((w > 0).mean()),
        "frac_neg": float((w < 0).mean()),
        "frac_zero": float((w == 0).mean()),
        "abs_p10": float(np.percentile(a, 10)),
        "abs_median": float(np.median(a)),
        "abs_p90": float(np.percentile(a, 90)),
        "abs_p99": float(np.percentile(a, 99)),
        "min": float(w.min()),
        "max": float(w.max()),
        "mean": float(w.mean()),
        "std": float(w.std()),
    }
    if spectral:
        out["spectral_radius"] = spectral_radius(connectome, W)
    return out


def spectral_radius(connectome: Connectome, W: torch.Tensor) -> float:
    """Largest |eigenvalue| of W as a [dst, src] matrix (ARPACK; dense for small networks)."""
    if connectome.n_neurons <= 2500:
        return float(np.abs(np.linalg.eigvals(connectome.dense_weights(W).numpy())).max())
    return float(abs(_leading_eig(connectome.sparse_weights(W.double().numpy()))[0]))


def _leading_eig(M, left: bool = False, v0=None):
    import scipy.sparse.linalg as sla

    A = M.T.tocsr() if left else M
    vals, vecs = sla.eigs(A, k=1, which="LM", v0=v0, tol=1e-6, maxiter=20000)
    return vals[0], vecs[:, 0]


def _pair_mean_count(connectome: Connectome) -> np.ndarray:
    ep = connectome.edge_pair.numpy()
    cnt = connectome.syn_count.double().numpy()
    s = np.bincount(ep, weights=cnt, minlength=connectome.n_pairs)
    n = np.bincount(ep, minlength=connectome.n_pairs)
    return np.where(n > 0, s / np.maximum(n, 1), 1.0)


def _edge_weights(connectome: Connectome, strength: np.ndarray) -> np.ndarray:
    ep = connectome.edge_pair.numpy()
    return connectome.sign.double().numpy() * connectome.syn_count.double().numpy() * strength[ep]


@functools.lru_cache(maxsize=16)
def _sample_type_params(
    seed: int,
    n_types: int,
    n_pairs: int,
    calib_extent: int,
    target_median: float,
    target_radius: float,
    target_exc: float,
    frac_fast: float,
    frac_zero: float,
    frac_weak: float,
    sigma: float,
):
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x666C79]))
    # tau: most types at ~dt (0.0194-0.0200 s), the rest log-uniform 0.037-0.32 s
    n_fast = int(round(frac_fast * n_types))
    perm = rng.permutation(n_types)
    tau = np.empty(n_types)
    tau[perm[:n_fast]] = rng.uniform(0.0194, 0.0200, n_fast)
    tau[perm[n_fast:]] = np.exp(rng.uniform(np.log(0.037), np.log(0.32), n_types - n_fast))
    v_rest = np.clip(rng.normal(0.51, 0.16, n_types), 0.0, 0.8)

    # strengths: strength_p = gain_p / <count>_p, gain lognormal, a few pairs ~0 (weak) or exactly 0
    ref = load_connectome(calib_extent)
    pair_sign = ref.pair_sign.double().numpy()
    gain = np.exp(rng.normal(0.0, sigma, n_pairs))
    r = rng.random(n_pairs)
    weak = r < frac_weak
    gain[weak] *= 10.0 ** rng.uniform(-4.0, -1.5, int(weak.sum()))
    gain[r >= 1.0 - frac_zero] = 0.0
    strength = gain / _pair_mean_count(ref)
    w = _edge_weights(ref, strength)
    strength *= target_median / np.median(np.abs(w))

    # Stability: the excitatory part W+ (a nonnegative matrix) bounds the positive feedback. With
    # tau >= dt, relu(v_{t+1}) <= relu(V_rest + I) + W+ relu(v_t) (up to noise), so a Perron root
    # rho(W+) < 1 rules out blow-up whatever the inhibition does. The excitatory type pairs that carry
    # the Perron root (eigenvalue sensitivity y_i x_j W_e, summed per pair) are shrunk until
    # rho(W+) <= target_exc; this touches few pairs, so the |W| distribution barely moves.
    ep = ref.edge_pair.numpy()
    src, dst = ref.src.numpy(), ref.dst.numpy()
    exc_pair = pair_sign > 0
    n_shrunk = 0
    rho_exc = None
    for _ in range(400):
        w = _edge_weights(ref, strength)
        Mp = ref.sparse_weights(np.where(w > 0, w, 0.0))
        lam, x = _leading_eig(Mp)
        rho_exc = abs(lam)
        if rho_exc <= target_exc:
            break
        _, y = _leading_eig(Mp, left=True)
        contrib = np.abs(np.conj(y[dst]) * x[src] * np.maximum(w, 0.0))
        per_pair = np.bincount(ep, weights=contrib, minlength=n_pairs) * exc_pair
        top = per_pair >= 0.5 * per_pair.max()
        strength[top] *= max(target_exc / rho_exc, 0.7)
        n_shrunk += int(top.sum())
    # Spectral radius of the whole W: one common factor c on the inhibitory strengths (bisection in
    # log c), which cannot create positive feedback.
    rho = None
    inh_scale = 1.0
    if target_radius is not None and target_radius > 0:

        def radius(c):
            s = np.where(exc_pair, strength, strength * c)
            return abs(_leading_eig(ref.sparse_weights(_edge_weights(ref, s)))[0])

        lo, hi = -6.0, 6.0
        if radius(np.exp(hi)) > target_radius:
            for _ in range(30):
                mid = 0.5 * (lo + hi)
                if radius(np.exp(mid)) > target_radius:
                    hi = mid
                else:
                    lo = mid
                if hi - lo < 1e-3:
                    break
            inh_scale = float(np.exp(0.5 * (lo + hi)))
            strength = np.where(exc_pair, strength, strength * inh_scale)
        rho = radius(1.0)
    return (
        tau,
        v_rest,
        strength,
        {
            "calibration_extent": calib_extent,
            "exc_pair_shrinks": n_shrunk,
            "exc_perron_root": float(rho_exc),
            "inhibitory_scale": inh_scale,
            "spectral_radius_at_calibration": None if rho is None else float(rho),
        },
    )


def _check_sample_arguments(**kw) -> None:
    """sample_parameters' numbers: spectral_radius = 0 / -1 / NaN and target_median_abs_w = -1 were
    silently ignored (the calibration skipped or flipped them); refuse them naming the argument."""

    def real(name, low, strict=True, high=None):
        v = kw[name]
        if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
            raise TypeError(f"sample_parameters: {name} must be a real number, got {type(v).__name__} {v!r}")
        v = float(v)
        if not np.isfinite(v) or (v <= low if strict else v < low) or (high is not None and v > high):
            rng = f"{'>' if strict else '>='} {low:g}" + (f" and <= {high:g}" if high is not None else "")
            raise ValueError(f"sample_parameters: {name} must be finite and {rng}, got {v!r}")

    seed = kw["seed"]
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"sample_parameters: seed must be an int >= 0, got {seed!r}")
    real("target_median_abs_w", 0.0)
    if kw["spectral_radius"] is not None:
        real("spectral_radius", 0.0)
    real("excitatory_radius", 0.0)
    for name in ("frac_fast_types", "frac_zero_pairs", "frac_weak_pairs"):
        real(name, 0.0, strict=False, high=1.0)
    real("gain_sigma", 0.0, strict=False)
    ext = kw["calibration_extent"]
    if ext is not None and (isinstance(ext, bool) or not isinstance(ext, (int, np.integer)) or ext < 1):
        raise ValueError(f"sample_parameters: calibration_extent must be None or an int >= 1, got {ext!r}")


def sample_parameters(
    connectome: Connectome,
    seed: int = 0,
    *,
    target_median_abs_w: float = 0.03,
    spectral_radius: Optional[float] = 1.7,
    excitatory_radius: float = 0.9,
    frac_fast_types: float = 51 / 65,
    frac_zero_pairs: float = 0.05,
    frac_weak_pairs: float = 0.12,
    gain_sigma: float = 1.0,
    calibration_extent: Optional[int] = None,
) -> FlyVisParameters:
    """Draw ground-truth parameters with the published network's statistics.

    Per cell type: tau (a fraction ``frac_fast_types`` of the types uniform in 0.0194-0.0200 s, i.e. at
    dt = 0.02, the rest log-uniform in 0.037-0.32 s) and V_rest ~ N(0.51, 0.16) clipped to [0, 0.8].
    Per type pair p (the 605 JSON edge sets): strength_p = gain_p / <count>_p with gain_p lognormal
    (sigma ``gain_sigma``), a fraction ``frac_weak_pairs`` multiplied by 10^U(-4, -1.5) (the near-zero
    trained strengths of the real network) and a fraction ``frac_zero_pairs`` exactly 0. Per edge
    ``W = sign x syn_count x strength``. The strengths are scaled so that the median |W| is
    ``target_median_abs_w``. Stability: the excitatory type pairs that carry the Perron root of the
    excitatory part W+ are shrunk until rho(W+) <= ``excitatory_radius`` (< 1 bounds the positive
    feedback, so simulations cannot blow up); then all inhibitory strengths get one common factor so
    that the spectral radius of W is ``spectral_radius`` (None: leave as drawn). Calibration runs on
    the network of extent ``calibration_extent`` (default: the connectome's extent, at most 8; a
    sub-network's Perron root is never larger, so extent-8 parameters stay stable on smaller
    extents). Deterministic in ``seed`` (cached per process). Out-of-range arguments (a spectral
    radius or median |W| <= 0, NaN, fractions outside [0, 1], ...) raise a ValueError naming them.
    """
    if not isinstance(connectome, Connectome):
        raise TypeError("sample_parameters expects a Connectome (see load_connectome)")
    _check_sample_arguments(
        seed=seed,
        target_median_abs_w=target_median_abs_w,
        spectral_radius=spectral_radius,
        excitatory_radius=excitatory_radius,
        frac_fast_types=frac_fast_types,
        frac_zero_pairs=frac_zero_pairs,
        frac_weak_pairs=frac_weak_pairs,
        gain_sigma=gain_sigma,
        calibration_extent=calibration_extent,
    )
    if calibration_extent is None:
        calibration_extent = min(connectome.extent, 8)
    tau_t, vr_t, strength, info = _sample_type_params(
        int(seed),
        connectome.n_types,
        connectome.n_pairs,
        int(calibration_extent),
        float(target_median_abs_w),
        None if spectral_radius is None else float(spectral_radius),
        float(excitatory_radius),
        float(frac_fast_types),
        float(frac_zero_pairs),
        float(frac_weak_pairs),
        float(gain_sigma),
    )
    return _from_type_values(connectome, tau_t, vr_t, strength, dict(info, seed=int(seed)))


def _from_type_values(connectome, tau_t, vr_t, strength, info) -> FlyVisParameters:
    ti = connectome.type_index.numpy()
    w = _edge_weights(connectome, np.asarray(strength, dtype=np.float64))
    f32 = lambda a: torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))  # noqa: E731
    return FlyVisParameters(
        tau=f32(tau_t[ti]),
        V_rest=f32(vr_t[ti]),
        W=f32(w),
        tau_type=f32(tau_t),
        V_rest_type=f32(vr_t),
        strength=f32(strength),
        info=info,
    )


def load_parameters(path: Union[str, Path], connectome: Connectome) -> FlyVisParameters:
    """Read ground-truth parameters from an npz: ``tau`` and ``V_rest`` per type [65] or per neuron [N],
    and either ``W`` per edge [E] (original edge order) or ``strength`` per type pair [605] (then
    W = sign x syn_count x strength). Raises ValueError naming the offending array."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"parameter file {path} does not exist")
    try:
        data = dict(np.load(path, allow_pickle=False))
    except Exception as exc:  # zipfile.BadZipFile, ValueError, OSError
        raise ValueError(f"parameter file {path} is not a readable npz: {exc}") from None
    n, e, nt, npairs = connectome.n_neurons, connectome.n_edges, connectome.n_types, connectome.n_pairs
    ti = connectome.type_index.numpy()

    def per_neuron(name):
        if name not in data:
            raise ValueError(f"parameter file {path} lacks {name!r} (per type [{nt}] or per neuron [{n}])")
        a = np.asarray(data[name], dtype=np.float64).reshape(-1)
        if a.size == nt:
            return a[ti], a
        if a.size == n:
            return a, None
        raise ValueError(f"{name!r} in {path} has {a.size} values; expected {nt} (per type) or {n} (per neuron)")

    tau, tau_t = per_neuron("tau")
    vr, vr_t = per_neuron("V_rest")
    strength = None
    if "W" in data:
        w = np.asarray(data["W"], dtype=np.float64).reshape(-1)
        if w.size != e:
            raise ValueError(
                f"'W' in {path} has {w.size} values; expected {e} (one per edge at extent {connectome.extent})"
            )
    elif "strength" in data:
        strength = np.asarray(data["strength"], dtype=np.float64).reshape(-1)
        if strength.size != npairs:
            raise ValueError(f"'strength' in {path} has {strength.size} values; expected {npairs} type pairs")
        if (strength < 0).any():
            raise ValueError(f"'strength' in {path} must be >= 0 (the sign comes from the connectome)")
        w = _edge_weights(connectome, strength)
    else:
        raise ValueError(f"parameter file {path} lacks 'W' (per edge [{e}]) or 'strength' (per pair [{npairs}])")
    for name, a in (("tau", tau), ("V_rest", vr), ("W", w)):
        if not np.isfinite(a).all():
            raise ValueError(f"{name!r} in {path} has non-finite values")
    if (tau <= 0).any():
        raise ValueError(f"'tau' in {path} must be > 0 (seconds), min is {tau.min()}")
    f32 = lambda a: torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))  # noqa: E731
    return FlyVisParameters(
        tau=f32(tau),
        V_rest=f32(vr),
        W=f32(w),
        tau_type=None if tau_t is None else f32(tau_t),
        V_rest_type=None if vr_t is None else f32(vr_t),
        strength=None if strength is None else f32(strength),
        info={"source": str(path)},
    )


# --------------------------------------------------------------------------------------------------
# the trained flyvis network shipped with the package

#: pretrained networks shipped in ``eirnn_fast/flyvis/data/`` (name -> folder with ``best_chkpt``)
PRETRAINED = {"flow/0000/000": "flow_0000_000"}
DEFAULT_PARAMS = "flyvis:flow/0000/000"
_CHECKPOINT_EXTENT = 15  # the extent flyvis trained (and ordered the checkpoint's parameters) at


def pretrained_path(name: str = "flow/0000/000") -> Path:
    """Path of a shipped pretrained checkpoint (``best_chkpt``); ``ValueError`` for unknown names."""
    if name not in PRETRAINED:
        raise ValueError(f"unknown pretrained flyvis network {name!r}; shipped: {sorted(PRETRAINED)}")
    return Path(__file__).resolve().parent / "data" / PRETRAINED[name] / "best_chkpt"


@functools.lru_cache(maxsize=4)
def _pretrained_type_values(name: str):
    """(tau [65], V_rest [65], strength [605]) in this package's type and pair order.

    flyvis groups a parameter by the keys of its ``groupby`` in order of first appearance in its node
    or edge table (compiled at extent 15): types in the spec's order, type pairs in the order the spec's
    edge sets first produce edges. The checkpoint's 604 pairs are therefore our 605 JSON pairs minus
    the one without edges at extent 15 (Lawf1 -> Lawf1), in JSON order; its 2,355 per-offset synapse
    counts (log) must equal the compiled connectome's, which checks the ordering on every load."""
    state = torch.load(pretrained_path(name), map_location="cpu", weights_only=True)["network"]
    ref = load_connectome(_CHECKPOINT_EXTENT)
    tau = state["nodes_time_const"].double().numpy()
    v_rest = state["nodes_bias"].double().numpy()
    if tau.size != ref.n_types or v_rest.size != ref.n_types:
        raise ValueError(f"{name}: {tau.size} time constants for {ref.n_types} cell types")
    ep = ref.edge_pair.numpy()
    _, first = np.unique(ep, return_index=True)
    pairs = ep[np.sort(first)]  # pairs in order of first appearance
    ck_sign, ck_strength = state["edges_sign"].numpy(), state["edges_syn_strength"].double().numpy()
    if pairs.size != ck_strength.size or not np.array_equal(ref.pair_sign.numpy()[pairs], ck_sign):
        raise ValueError(f"{name}: the checkpoint's {ck_strength.size} type pairs do not match the connectome's")
    du = (ref.u[ref.dst] - ref.u[ref.src]).numpy()
    dv = (ref.v[ref.dst] - ref.v[ref.src]).numpy()
    keys = np.rec.fromarrays([ep, du, dv])
    _, first_off = np.unique(keys, return_index=True)
    counts = ref.syn_count.double().numpy()[np.sort(first_off)]
    ck_counts = np.exp(state["edges_syn_count"].double().numpy())
    if counts.size != ck_counts.size or not np.allclose(counts, ck_counts, rtol=1e-5):
        raise ValueError(f"{name}: the checkpoint's synapse counts do not match the connectome's")
    strength = np.zeros(ref.n_pairs)
    strength[pairs] = ck_strength
    return tau, v_rest, strength


def load_pretrained(connectome: Connectome, name: str = "flow/0000/000") -> FlyVisParameters:
    """The trained flyvis network ``name`` mapped onto ``connectome`` (any extent): tau and V_rest per
    cell type, W = sign x syn_count x syn_strength per edge (flyvis's ``PPNeuronIGRSynapses``). tau is
    the raw trained value (51 of 65 types below dt = 0.02 s), as flyvis-gnn integrates it."""
    if not isinstance(connectome, Connectome):
        raise TypeError("load_pretrained expects a Connectome (see load_connectome)")
    tau, v_rest, strength = _pretrained_type_values(name)
    return _from_type_values(connectome, tau, v_rest, strength, {"source": f"flyvis:{name}"})


def resolve_parameters(spec: Optional[str], connectome: Connectome, seed: int = 0) -> FlyVisParameters:
    """Ground truth from a spec string: ``"flyvis:NAME"`` (a shipped trained network, see
    :data:`PRETRAINED`), ``"sampled"`` (:func:`sample_parameters` with ``seed``) or an npz path
    (:func:`load_parameters`). ``None`` means :data:`DEFAULT_PARAMS`."""
    spec = DEFAULT_PARAMS if spec is None else spec
    if not isinstance(spec, str) or not spec:
        raise TypeError(f"params must be 'flyvis:NAME', 'sampled' or an npz path, got {spec!r}")
    if spec.startswith("flyvis:"):
        return load_pretrained(connectome, spec[len("flyvis:") :])
    if spec == "sampled":
        return sample_parameters(connectome, seed)
    return load_parameters(spec, connectome)
