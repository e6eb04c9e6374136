"""Recovery metrics and analysis for the FlyVis GNN (definitions follow saalfeldlab/flyvis-gnn).

Every R^2 here is ``r2_score(learned, true)``: the reference fits ``learned = a * true + b`` by least
squares and reports ``1 - SS_res / SS_tot`` (SS_tot about the mean of *learned*), which equals the
squared Pearson correlation; it is therefore invariant to affine rescaling of the learned values.
NaN policy: non-finite pairs are dropped; fewer than 2 points or zero variance gives NaN.

Per-neuron linearisation of the learned model (:func:`linearize_model`), with mu_i, s_i the mean
and std of neuron i's training voltage:

* ``slope_f_i, offset_f_i``: OLS line of ``f_theta(v, a_i, msg=0, I=0)`` on ``n_points`` voltages
  evenly spaced in ``[mu_i - 2 s_i, mu_i + 2 s_i]``. The true update is ``(-v + V_rest + msg + I)/tau``,
  so ``tau_i = -1/slope_f_i`` and ``V_rest_i = -offset_f_i / slope_f_i``.
* ``slope_g_j``: OLS slope of ``g_phi(v, a_j)^2`` on ``[max(mu_j - 2 s_j, 0), mu_j + 2 s_j]``
  (1 for neurons with ``mu_j + s_j <= 0``, which never fire): the learned stand-in for ReLU's slope 1.
* ``grad_msg_i``: ``d f_theta / d msg`` at neuron i's real inputs, median over ``n_grad_frames``
  training frames at ``linspace(T/10, T-100)`` (clipped to the data).

Metrics:

* ``connectivity_R2``: corrected weights ``W*_e = -W_e / slope_f_i * grad_msg_i * slope_g_j`` for
  ``e = (j -> i)`` (undoes the W <-> g_phi <-> f_theta scale degeneracy: true
  ``W_ij = tau_i * df/dmsg * W_e * g'(v_j)``), edges with ``|W* - W_true| > outlier_threshold`` (5)
  removed, then R^2 over the remaining edges.
* ``tau_R2``: ``tau_learned_i = clip(-1/slope_f_i, 0, 1)`` vs true tau over all neurons.
* ``V_rest_R2``: ``V_rest_learned_i = -offset_f_i / slope_f_i`` vs true V_rest over all neurons.
* ``cluster_accuracy``: cluster per-neuron features (default: the 8-D ``[a_i, tau_i, V_rest_i,
  mean/std of incoming W*, mean/std of outgoing W*]``, z-scored) and match clusters to true types
  one-to-one with the Hungarian algorithm on the confusion matrix (clusters left unmatched count as
  errors); accuracy = fraction of neurons whose matched type is their true type. The reference
  clusters with sklearn's ``GaussianMixture(100, 'full')``; this package uses seeded k-means with
  ``n_clusters`` (default: the number of true types) to avoid the sklearn dependency.
* ``test_pearson``: autoregressive noise-free rollout of the GNN (explicit Euler with dt, stimulus
  from the data, voltages clamped to +-100) from the first test frame; Pearson r per neuron between
  that rollout and the **noise-free rollout of the ground-truth ODE from the same frame**
  (:func:`true_rollout`, as NeuralGraph's ``data_test_flyvis`` re-simulates its ground truth with the
  noise off); mean over neurons with non-constant traces (NaN ones skipped). Against the recorded test
  trace itself (``test_pearson_recorded``) the score is capped by the process noise the simulation
  added: at noise 0.5 a perfect model scores ~0.1, because the recorded trace is mostly accumulated noise.

Analysis: per-neuron W-sum correlation (Pearson of sum_in W* vs sum_in W_true over neurons, and the
same for outgoing sums), sign match (fraction of edges with sign(W*) == sign(W_true) among edges with
W_true != 0), activity SVD rank (number of singular values of the centred ``[T, N]`` activity needed
for 99% of the variance), CV across seeds (100 * std / |mean|, population std, in percent).
"""

from __future__ import annotations

from typing import Dict, Optional, Sequence

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment


def _np(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().double().numpy()
    return np.asarray(x, dtype=np.float64)


def r2_score(learned, true) -> float:
    """R^2 of the OLS fit ``learned = a * true + b`` (= squared Pearson r); NaN if degenerate."""
    x, y = _np(true).ravel(), _np(learned).ravel()
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    if x.size < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:  # ptp, not std: a constant's std rounds to ~1e-17
        return float("nan")
    r = np.corrcoef(x, y)[0, 1]
    return float(r * r)


def pearson(a, b) -> float:
    a, b = _np(a).ravel(), _np(b).ravel()
    ok = np.isfinite(a) & np.isfinite(b)
    a, b = a[ok], b[ok]
    if a.size < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def _row_chunks(x, rows: int = 4096):
    """float64 numpy blocks of at most ``rows`` rows of a ``[T, N]`` tensor/array (never the whole
    array in float64 at once: 64,000 x 13,741 frames would be 7 GB)."""
    for i in range(0, x.shape[0], rows):
        yield _np(x[i : i + rows])


def activity_stats(x) -> tuple:
    """Per-neuron mean and (population) std of a ``[T, N]`` voltage array, two passes in float64."""
    total = sum(c.sum(0) for c in _row_chunks(x))
    mu = total / x.shape[0]
    var = sum(((c - mu) ** 2).sum(0) for c in _row_chunks(x)) / x.shape[0]
    return mu, np.sqrt(var)


def _ols_rows(xg: np.ndarray, yg: np.ndarray):
    """Row-wise OLS ``y = slope * x + offset`` for ``[N, K]`` grids."""
    xm, ym = xg.mean(1, keepdims=True), yg.mean(1, keepdims=True)
    var = ((xg - xm) ** 2).sum(1)
    slope = np.where(var > 0, ((xg - xm) * (yg - ym)).sum(1) / np.where(var > 0, var, 1.0), 0.0)
    return slope, ym[:, 0] - slope * xm[:, 0]


def linearize_model(model, x, I, n_points: int = 1000, n_grad_frames: int = 8) -> Dict[str, np.ndarray]:
    """Per-neuron slopes of the learned functions (module docstring). x, I: ``[T, N]`` training data."""
    p = next(model.parameters())
    mu, sd = activity_stats(x)
    N = mu.size
    u = np.linspace(0.0, 1.0, n_points)[None, :]
    lo, hi = mu - 2 * sd, mu + 2 * sd
    vg = lo[:, None] + (hi - lo)[:, None] * u  # [N, K]
    glo = np.maximum(lo, 0.0)
    gg = glo[:, None] + (np.maximum(hi, glo) - glo)[:, None] * u
    fv, gv = np.empty_like(vg), np.empty_like(gg)
    with torch.no_grad():  # neurons in blocks: the MLPs' [rows * n_points, hidden] activations stay small
        t = lambda a: torch.as_tensor(a, dtype=p.dtype, device=p.device)  # noqa: E731
        for i in range(0, N, 512):
            j = min(N, i + 512)
            zeros = torch.zeros(j - i, n_points, dtype=p.dtype, device=p.device)
            fv[i:j] = model.f_theta_node(t(vg[i:j]), zeros, zeros, a=model.a[i:j]).cpu().double().numpy()
            gv[i:j] = model.g_phi_self(t(gg[i:j]), a=model.a[i:j]).cpu().double().numpy()
    slope_f, offset_f = _ols_rows(vg, fv)
    slope_g, _ = _ols_rows(gg, gv)
    slope_g = np.where(mu + sd <= 0, 1.0, slope_g)
    # d f / d msg at real inputs
    T = x.shape[0]
    frames = np.unique(np.clip(np.linspace(T / 10, T - 100, n_grad_frames).astype(int), 0, T - 1))
    v = torch.as_tensor(_np(x[frames]).T, dtype=p.dtype, device=p.device)  # [N, F]
    Iv = torch.as_tensor(_np(I[frames]).T, dtype=p.dtype, device=p.device)
    with torch.no_grad():
        msg = model.messages(v)
    msg = msg.clone().requires_grad_(True)
    with torch.enable_grad():
        out = model.f_theta_node(v, msg, Iv)
        (gm,) = torch.autograd.grad(out.sum(), msg)
    grad_msg = np.median(gm.detach().cpu().double().numpy(), axis=1)
    return {"slope_f": slope_f, "offset_f": offset_f, "slope_g": slope_g, "grad_msg": grad_msg, "mu": mu, "sigma": sd}


def corrected_W(W, src, dst, lin: Dict[str, np.ndarray]) -> np.ndarray:
    """``W*_e = -W_e / slope_f[dst_e] * grad_msg[dst_e] * slope_g[src_e]`` (module docstring)."""
    W, src, dst = _np(W).ravel(), np.asarray(src).astype(np.int64), np.asarray(dst).astype(np.int64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return -W / lin["slope_f"][dst] * lin["grad_msg"][dst] * lin["slope_g"][src]


def connectivity_R2(W_corrected, W_true, outlier_threshold: Optional[float] = 5.0) -> float:
    """R^2 of corrected learned vs true W over edges, dropping ``|W* - W_true| > outlier_threshold``
    (None: keep all). Pass ``corrected_W(...)`` (or raw W for the uncorrected R^2)."""
    a, b = _np(W_corrected).ravel(), _np(W_true).ravel()
    if a.shape != b.shape:
        raise ValueError(f"W_corrected and W_true must have the same number of edges, got {a.size} and {b.size}")
    if outlier_threshold is not None:
        with np.errstate(invalid="ignore"):
            keep = np.abs(a - b) <= outlier_threshold
        a, b = a[keep], b[keep]
    return r2_score(a, b)


def learned_tau_vrest(lin: Dict[str, np.ndarray]):
    """``tau = clip(-1/slope_f, 0, 1)``, ``V_rest = -offset_f / slope_f`` per neuron."""
    with np.errstate(divide="ignore", invalid="ignore"):
        tau = np.clip(-1.0 / lin["slope_f"], 0.0, 1.0)
        vrest = -lin["offset_f"] / lin["slope_f"]
    return tau, vrest


def tau_R2(tau_learned, tau_true) -> float:
    """R^2 of learned vs true time constants over all neurons."""
    return r2_score(tau_learned, tau_true)


def V_rest_R2(V_rest_learned, V_rest_true) -> float:
    """R^2 of learned vs true resting potentials over all neurons."""
    return r2_score(V_rest_learned, V_rest_true)


def kmeans(features, n_clusters: int, seed: int = 42, n_init: int = 10, n_iter: int = 100) -> np.ndarray:
    """Seeded k-means (k-means++ init, best of ``n_init`` by inertia) -> labels ``[N]``."""
    with np.errstate(invalid="ignore", over="ignore"):  # non-finite features: labels still come back
        return _kmeans(features, n_clusters, seed, n_init, n_iter)


def _kmeans(features, n_clusters: int, seed: int, n_init: int, n_iter: int) -> np.ndarray:
    X = _np(features)
    rng = np.random.default_rng(seed)
    n = X.shape[0]
    k = min(n_clusters, n)
    best, best_inertia = None, np.inf
    for _ in range(n_init):
        c = [X[rng.integers(n)]]
        for _ in range(1, k):
            d2 = np.min(((X[:, None, :] - np.asarray(c)[None]) ** 2).sum(-1), axis=1)
            prob = d2 / d2.sum() if d2.sum() > 0 else np.full(n, 1.0 / n)
            c.append(X[rng.choice(n, p=prob)])
        c = np.asarray(c)
        for _ in range(n_iter):
            lab = np.argmin(((X[:, None, :] - c[None]) ** 2).sum(-1), axis=1)
            newc = np.array([X[lab == j].mean(0) if np.any(lab == j) else c[j] for j in range(k)])
            if np.allclose(newc, c):
                break
            c = newc
        inertia = ((X - c[lab]) ** 2).sum()
        if best is None or inertia < best_inertia:  # NaN inertia (degenerate features) keeps the first
            best, best_inertia = lab, inertia
    return best


def cluster_accuracy(labels_pred, labels_true) -> float:
    """Fraction of neurons correctly typed after a Hungarian one-to-one matching of predicted
    clusters to true types on the confusion matrix (unmatched clusters count as errors).
    Invariant to relabelling the clusters."""
    p, t = np.asarray(labels_pred).ravel(), np.asarray(labels_true).ravel()
    if p.shape != t.shape:
        raise ValueError(f"labels_pred and labels_true must have the same length, got {p.size} and {t.size}")
    _, pi = np.unique(p, return_inverse=True)
    _, ti = np.unique(t, return_inverse=True)
    conf = np.zeros((pi.max() + 1, ti.max() + 1), dtype=np.int64)
    np.add.at(conf, (pi, ti), 1)
    rows, cols = linear_sum_assignment(conf, maximize=True)
    return float(conf[rows, cols].sum() / p.size)


def node_features(model, lin, W_star, src, dst, tau_l, vrest_l) -> np.ndarray:
    """The 8-D (for embedding_dim 2) clustering features, z-scored per column."""
    N = lin["slope_f"].size
    src, dst = np.asarray(src).astype(np.int64), np.asarray(dst).astype(np.int64)
    # a diverged model can give huge or non-finite W*: keep the features finite so clustering runs
    Ws = np.nan_to_num(np.asarray(W_star, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    Ws = np.clip(Ws, -1e150, 1e150)

    def mean_std(idx):
        cnt = np.bincount(idx, minlength=N).clip(min=1)
        m = np.bincount(idx, weights=Ws, minlength=N) / cnt
        v = np.bincount(idx, weights=Ws * Ws, minlength=N) / cnt - m * m
        return m, np.sqrt(np.maximum(v, 0))

    mi, si = mean_std(dst)
    mo, so = mean_std(src)
    a = model.a.detach().cpu().double().numpy()
    F = np.column_stack([a, np.nan_to_num(tau_l), np.nan_to_num(vrest_l), mi, si, mo, so])
    F = np.nan_to_num(F, nan=0.0, posinf=0.0, neginf=0.0)
    with np.errstate(over="ignore", invalid="ignore"):
        sd = F.std(0)
        out = (F - F.mean(0)) / np.where(np.isfinite(sd) & (sd > 0), sd, 1.0)
    return np.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0)


def pearson_per_neuron(pred, true) -> np.ndarray:
    """Pearson r per column of two ``[T, N]`` arrays (NaN for constant columns)."""
    a, b = _np(pred), _np(true)
    a, b = a - a.mean(0), b - b.mean(0)
    den = np.sqrt((a * a).sum(0) * (b * b).sum(0))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, (a * b).sum(0) / den, np.nan)


def true_rollout(src, dst, W, tau, V_rest, v0, I, dt: float, tau_clamp: str = "none") -> np.ndarray:
    """Noise-free explicit-Euler rollout of the ground-truth ODE
    ``tau dv/dt = -v + V_rest + sum_j W_ij ReLU(v_j) + I`` from ``v0 [N]`` over the stimulus ``I [T, N]``
    (row 0 = v0, row t uses I[t-1], as the simulator and :meth:`FlyVisGNN.rollout`), in float64.
    ``tau_clamp="dt"`` integrates with ``max(tau, dt)`` (flyvis) instead of the raw tau."""
    I = torch.as_tensor(_np(I))
    n = I.shape[1]
    src_t = torch.as_tensor(np.asarray(src), dtype=torch.int64)
    dst_t = torch.as_tensor(np.asarray(dst), dtype=torch.int64)
    w = torch.as_tensor(_np(W).ravel())
    tau_t = torch.as_tensor(_np(tau).ravel())
    if tau_clamp == "dt":
        tau_t = tau_t.clamp(min=dt)
    vr = torch.as_tensor(_np(V_rest).ravel())
    out = torch.empty(I.shape[0], n, dtype=torch.float64)
    v = torch.as_tensor(_np(v0).ravel()).clone()
    out[0] = v
    for t in range(1, I.shape[0]):
        msg = torch.zeros(n, dtype=torch.float64).index_add_(0, dst_t, w * torch.relu(v)[src_t])
        v = v + dt * (-v + vr + msg + I[t - 1]) / tau_t
        out[t] = v
    return out.numpy()


def test_pearson(
    model, x_test, I_test, dt: float, clamp: float = 100.0, n_frames: Optional[int] = None, truth=None
) -> float:
    """Mean over neurons of Pearson r(rollout, truth) (module docstring): the GNN's noise-free rollout
    from ``x_test[0]`` against ``truth [T, N]`` (the ground-truth ODE's noise-free rollout from the same
    state, :func:`true_rollout`) or, when ``truth`` is None, against the recorded ``x_test`` itself
    (which carries the simulation's process noise: at noise 0.5 that trace is mostly noise)."""
    p = next(model.parameters())
    x = torch.as_tensor(_np(x_test)[:n_frames], dtype=p.dtype, device=p.device)
    I = torch.as_tensor(_np(I_test)[:n_frames], dtype=p.dtype, device=p.device)
    with torch.no_grad():
        roll = model.rollout(x[0], I, dt, clamp)
    target = x.cpu().double().numpy() if truth is None else _np(truth)[: x.shape[0]]
    r = pearson_per_neuron(roll.cpu().double().numpy(), target)
    return float(np.nanmean(r)) if np.isfinite(r).any() else float("nan")


# -- analysis ------------------------------------------------------------------------------------
def per_neuron_W_sum_correlation(W_learned, W_true, src, dst, n_neurons: int) -> Dict[str, float]:
    """Pearson r over neurons of the summed incoming (``in``) and outgoing (``out``) weights."""
    a, b = _np(W_learned).ravel(), _np(W_true).ravel()
    a = np.where(np.isfinite(a), a, 0.0)  # non-finite W* (a neuron with slope_f = 0) count as 0, not 1e308
    src, dst = np.asarray(src).astype(np.int64), np.asarray(dst).astype(np.int64)
    out = {}
    for name, idx in (("in", dst), ("out", src)):
        out[name] = pearson(
            np.bincount(idx, weights=a, minlength=n_neurons), np.bincount(idx, weights=b, minlength=n_neurons)
        )
    return out


def sign_match(W_learned, W_true) -> float:
    """Fraction of edges with ``sign(W_learned) == sign(W_true)`` among edges with ``W_true != 0``."""
    a, b = _np(W_learned).ravel(), _np(W_true).ravel()
    nz = b != 0
    return float(np.mean(np.sign(a[nz]) == np.sign(b[nz]))) if nz.any() else float("nan")


def activity_svd_rank(x, variance: float = 0.99, max_frames: Optional[int] = 20000) -> int:
    """Smallest k whose top-k singular values of the mean-centred ``[T, N]`` activity explain
    ``variance`` of the total variance (sum of squared singular values).

    Computed from the eigenvalues of the smaller Gram matrix (``X^T X`` [N, N] or ``X X^T``), built in
    float32 and decomposed in float64. Recordings longer than ``max_frames`` (None: no limit) are
    subsampled to ``max_frames`` evenly spaced frames; as long as ``max_frames >= N`` the rank is
    never capped by the subsample (extent 8: N = 13,741 < 20,000). With per-frame process noise the
    99 % rank is large (the noise is full rank): thousands at extent 8, seed 0.
    """
    if max_frames is not None and x.shape[0] > max_frames:
        x = x[np.linspace(0, x.shape[0] - 1, max_frames).round().astype(np.int64)]
    X = torch.as_tensor(x).to(torch.float32)
    X = X - (X.sum(0, dtype=torch.float64) / X.shape[0]).float()  # mean in float64, no float64 copy of X
    G = X.t() @ X if X.shape[1] <= X.shape[0] else X @ X.t()  # the smaller Gram matrix
    ev = torch.linalg.eigvalsh(G.double()).clamp(min=0).flip(0).numpy()  # squared singular values, descending
    cum = np.cumsum(ev) / max(ev.sum(), 1e-300)
    return int(min(np.searchsorted(cum, variance) + 1, ev.size))


def activity_svd_rank_reference(
    x, max_components: int = 100, max_neurons: int = 1024, max_data_size: int = 10_000_000, seed: int = 42
) -> Dict[str, int]:
    """Activity rank as flyvis-gnn's ``analyze_data_svd`` defines it (seed 003's ranks 6-60 use it):
    raw voltages (not centred), every ``ceil(N / max_neurons)``-th neuron, frames strided so that
    frames x neurons <= ``max_data_size``, the top ``k = min(max_components, min(T, N) - 1)`` singular
    values (randomised SVD, seeded, when the sample exceeds 1e6 values; exact otherwise), and the
    smallest r whose cumulative energy **within those k** reaches 90 % / 99 % (so the rank is capped
    at k). Returns ``{"rank_90": ..., "rank_99": ..., "k": ...}``."""
    T, N = x.shape
    cols = np.arange(0, N, int(np.ceil(N / max_neurons))) if N > max_neurons else np.arange(N)
    step = int(np.ceil(T * cols.size / max_data_size)) if T * cols.size > max_data_size else 1
    A = torch.as_tensor(np.asarray(x[::step])[:, cols], dtype=torch.float64)
    k = int(min(max_components, min(A.shape) - 1))
    if k < 1:
        return {"rank_90": int(min(A.shape)), "rank_99": int(min(A.shape)), "k": k}
    if A.numel() > 1e6:  # randomised range finder with power iterations (Halko et al.), seeded
        g = torch.Generator().manual_seed(seed)
        Q = torch.linalg.qr(A @ torch.randn(A.shape[1], k + 10, generator=g, dtype=A.dtype))[0]
        for _ in range(7):
            Q = torch.linalg.qr(A @ torch.linalg.qr(A.t() @ Q)[0])[0]
        S = torch.linalg.svdvals(Q.t() @ A)[:k]
    else:
        S = torch.linalg.svdvals(A)[:k]
    cum = (torch.cumsum(S**2, 0) / (S**2).sum()).numpy()
    return {"rank_90": int(np.searchsorted(cum, 0.90) + 1), "rank_99": int(np.searchsorted(cum, 0.99) + 1), "k": k}


#: recovery mechanism from the mean of the in- and out-going per-neuron W-sum correlations (seed 003)
MECHANISM_THRESHOLD = 0.3


def recovery_mechanism(w_sum_corr_in: float, w_sum_corr_out: float, threshold: float = MECHANISM_THRESHOLD) -> str:
    """Seed 003's classes from the per-neuron W-sum correlations ``m = (r_in + r_out) / 2``: ``DIRECT``
    (``m >= threshold``: learned W sums follow the true ones), ``COMPENSATION`` (``m <= -threshold``: the
    MLPs invert an anti-correlated W), ``PARTIAL`` (near zero). The seed's four models: 003 (+0.68/+0.94)
    DIRECT, 041 (-0.19/+0.31) PARTIAL, 011 (-0.46/-0.84) COMPENSATION. NaN inputs give ``UNDEFINED``."""
    m = 0.5 * (w_sum_corr_in + w_sum_corr_out)
    if not np.isfinite(m):
        return "UNDEFINED"
    return "DIRECT" if m >= threshold else "COMPENSATION" if m <= -threshold else "PARTIAL"


def sign_flips(W_learned, W_true) -> Dict[str, float]:
    """Sign-flip breakdown: fraction of truly positive edges learned negative (``pos_to_neg``) and of
    truly negative edges learned positive (``neg_to_pos``); exact zeros on either side are not flips."""
    a, b = _np(W_learned).ravel(), _np(W_true).ravel()
    pos, neg = b > 0, b < 0
    return {
        "pos_to_neg": float(np.mean(a[pos] < 0)) if pos.any() else float("nan"),
        "neg_to_pos": float(np.mean(a[neg] > 0)) if neg.any() else float("nan"),
        "n_pos": int(pos.sum()),
        "n_neg": int(neg.sum()),
    }


def _r2_det(pred, true) -> float:
    """Coefficient of determination 1 - SS_res / SS_tot of ``pred`` as a prediction of ``true``
    (not affine invariant; negative when worse than the mean)."""
    p, t = _np(pred).ravel(), _np(true).ravel()
    ok = np.isfinite(p) & np.isfinite(t)
    p, t = p[ok], t[ok]
    ss = ((t - t.mean()) ** 2).sum()
    return float(1.0 - ((p - t) ** 2).sum() / ss) if t.size > 1 and ss > 0 else float("nan")


def per_type_recovery(W_star, W_true, dst, tau_l, tau_t, vrest_l, vrest_t, type_index, type_names=None) -> Dict:
    """Seed 003's per-type tools: for each cell type (edges grouped by their postsynaptic type),
    ``connectivity_R2`` (squared Pearson, the package's R^2) and ``connectivity_R2_det`` (1 - SS_res/SS_tot,
    can be negative) of its incoming W*, and the mean learned tau / V_rest of its neurons next to the true
    value with the RMSE over them; plus ``tau_R2_by_type`` / ``V_rest_R2_by_type``: R^2 of the per-type
    mean learned values against the 65 true ones (within one type the true value is constant, so a
    within-type R^2 is undefined). Which type carries the tau error: ``tau_var_share`` (the type's share
    of the true tau's sum of squares about its mean, i.e. its lever on tau_R2) and ``tau_R2_without``
    (tau_R2 over all neurons except this type's); ``tau_worst_type`` names the type whose removal raises
    tau_R2 most."""
    ti = np.asarray(type_index).astype(np.int64)
    dst = np.asarray(dst).astype(np.int64)
    Ws, Wt = _np(W_star).ravel(), _np(W_true).ravel()
    tl, tt, vl, vt = (_np(a).ravel() for a in (tau_l, tau_t, vrest_l, vrest_t))
    types = np.unique(ti)
    rows = {}
    etype = ti[dst]
    ok_t = np.isfinite(tt)
    ss_tau = float(((tt[ok_t] - tt[ok_t].mean()) ** 2).sum()) if ok_t.any() else float("nan")
    with np.errstate(all="ignore"):
        for t in types:
            n_mask, e_mask = ti == t, etype == t
            name = str(type_names[t]) if type_names is not None else str(int(t))
            rows[name] = {
                "n_neurons": int(n_mask.sum()),
                "n_edges_in": int(e_mask.sum()),
                "connectivity_R2": r2_score(Ws[e_mask], Wt[e_mask]) if e_mask.sum() > 1 else float("nan"),
                "connectivity_R2_det": _r2_det(Ws[e_mask], Wt[e_mask]) if e_mask.sum() > 1 else float("nan"),
                "tau_true": float(np.nanmean(tt[n_mask])),
                "tau_learned": float(np.nanmean(tl[n_mask])),
                "tau_rmse": float(np.sqrt(np.nanmean((tl[n_mask] - tt[n_mask]) ** 2))),
                "tau_var_share": float(((tt[n_mask & ok_t] - tt[ok_t].mean()) ** 2).sum() / ss_tau)
                if ss_tau > 0
                else float("nan"),
                "tau_R2_without": r2_score(tl[~n_mask], tt[~n_mask]),
                "V_rest_true": float(np.nanmean(vt[n_mask])),
                "V_rest_learned": float(np.nanmean(vl[n_mask])),
                "V_rest_rmse": float(np.sqrt(np.nanmean((vl[n_mask] - vt[n_mask]) ** 2))),
            }
    col = lambda k: np.array([r[k] for r in rows.values()])  # noqa: E731
    without = col("tau_R2_without")
    return {
        "types": rows,
        "tau_worst_type": list(rows)[int(np.nanargmax(without))] if np.isfinite(without).any() else None,
        "tau_R2_by_type": r2_score(col("tau_learned"), col("tau_true")),
        "V_rest_R2_by_type": r2_score(col("V_rest_learned"), col("V_rest_true")),
    }


def recovery_analysis(arrays: Dict, data: Dict, src, dst, n_neurons: int, type_names=None) -> Dict:
    """All of seed 003's analysis tools for one trained model (``arrays`` as :func:`evaluate` returns
    them with ``return_arrays``): per-type R^2, sign flips, per-neuron sums of W* and of |W*| (in/out)
    correlated with the truth, the recovery mechanism, and both activity-rank definitions."""
    Wt = _np(data["W"])
    Ws = arrays["W_star"]
    out: Dict = {}
    wsum = per_neuron_W_sum_correlation(Ws, Wt, src, dst, n_neurons)
    asum = per_neuron_W_sum_correlation(np.abs(np.nan_to_num(Ws)), np.abs(Wt), src, dst, n_neurons)
    out["W_sum_corr_in"], out["W_sum_corr_out"] = wsum["in"], wsum["out"]
    out["absW_sum_corr_in"], out["absW_sum_corr_out"] = asum["in"], asum["out"]
    out["recovery_mechanism"] = recovery_mechanism(wsum["in"], wsum["out"])
    out["recovery_mechanism_rule"] = (
        f"m = (W_sum_corr_in + W_sum_corr_out) / 2: DIRECT m >= {MECHANISM_THRESHOLD}, "
        f"COMPENSATION m <= -{MECHANISM_THRESHOLD}, else PARTIAL"
    )
    out["sign_flips"] = sign_flips(Ws, Wt)
    out["sign_match"] = sign_match(Ws, Wt)
    if data.get("cell_type_index") is not None and data.get("tau") is not None and data.get("V_rest") is not None:
        out["per_type"] = per_type_recovery(
            Ws,
            Wt,
            dst,
            arrays["tau"],
            data["tau"],
            arrays["V_rest"],
            data["V_rest"],
            data["cell_type_index"],
            type_names,
        )
    out["activity_svd_rank_reference"] = activity_svd_rank_reference(data["x"])
    out["activity_svd_rank_99_centred"] = activity_svd_rank(data["x"])
    return out


def cv_across_seeds(values: Sequence[float]) -> float:
    """Coefficient of variation in percent: ``100 * std(values) / |mean(values)|`` (population std)."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0 or v.mean() == 0:
        return float("nan")
    return float(100.0 * v.std() / abs(v.mean()))


def evaluate(model, data: Dict, **kwargs) -> Dict:
    """All metrics and analysis for a trained model against ground truth in ``data`` (keys ``x, I``
    training data; optional ``W, tau, V_rest, cell_type_index, x_test, I_test, dt, tau_clamp``); keyword
    arguments as :func:`_evaluate`. Floating-point overflow from a diverged model (W* of 1e300, a
    learned V_rest of 1e7) gives NaN metrics explained in ``notes``, not RuntimeWarnings."""
    with np.errstate(all="ignore"):
        return _evaluate(model, data, **kwargs)


def _evaluate(
    model,
    data: Dict,
    *,
    n_clusters: Optional[int] = None,
    outlier_threshold: float = 5.0,
    n_test_frames: Optional[int] = None,
    cluster_seed: int = 42,
    return_arrays: bool = False,
) -> Dict:
    """All metrics and analysis for a trained model against ground truth in ``data`` (keys ``x, I``
    training data; optional ``W, tau, V_rest, cell_type_index, x_test, I_test, dt``).
    Returns a JSON-ready dict (plus ``arrays`` with the learned values when ``return_arrays``)."""
    src, dst = model.src.cpu().numpy(), model.dst.cpu().numpy()
    lin = linearize_model(model, data["x"], data["I"])
    tau_l, vrest_l = learned_tau_vrest(lin)
    W_raw = model.W.detach().cpu().double().numpy()
    W_star = corrected_W(W_raw, src, dst, lin)
    res: Dict = {
        "n_neurons": int(model.n_neurons),
        "n_edges": int(model.n_edges),
        "activity_svd_rank_99": activity_svd_rank(data["x"]),
    }
    if data.get("W") is not None:
        Wt = _np(data["W"])
        res["connectivity_R2"] = connectivity_R2(W_star, Wt, outlier_threshold)
        res["connectivity_R2_raw"] = connectivity_R2(W_raw, Wt, None)
        res["connectivity_outlier_threshold"] = outlier_threshold
        corr = per_neuron_W_sum_correlation(W_star, Wt, src, dst, model.n_neurons)
        res["W_sum_corr_in"], res["W_sum_corr_out"] = corr["in"], corr["out"]
        res["sign_match"] = sign_match(W_star, Wt)
    if data.get("tau") is not None:
        res["tau_R2"] = tau_R2(tau_l, data["tau"])
    if data.get("V_rest") is not None:
        res["V_rest_R2"] = V_rest_R2(vrest_l, data["V_rest"])
    types = data.get("cell_type_index")
    if types is not None:
        types = np.asarray(types)
        k = int(n_clusters or np.unique(types).size)
        feats = node_features(model, lin, W_star, src, dst, tau_l, vrest_l)
        labels = kmeans(feats, k, seed=cluster_seed)
        res["cluster_accuracy"] = cluster_accuracy(labels, types)
        res["cluster_method"] = f"kmeans(k={k}, seed={cluster_seed}) on z-scored [a, tau, V_rest, in/out W* mean/std]"
    if data.get("x_test") is not None and data.get("I_test") is not None:
        dt = float(data.get("dt", 0.02))
        xs, Is = _np(data["x_test"])[:n_test_frames], _np(data["I_test"])[:n_test_frames]
        if all(data.get(k) is not None for k in ("W", "tau", "V_rest")):
            truth = true_rollout(
                src, dst, data["W"], data["tau"], data["V_rest"], xs[0], Is, dt, data.get("tau_clamp", "none")
            )
            res["test_pearson"] = test_pearson(model, xs, Is, dt, truth=truth)
            res["test_pearson_target"] = "noise-free ground-truth rollout from the first test frame"
            res["test_pearson_recorded"] = test_pearson(model, xs, Is, dt)
        else:
            res["test_pearson"] = test_pearson(model, xs, Is, dt)
            res["test_pearson_target"] = "recorded test trace (no ground truth in the data)"
    notes = []
    if data.get("W") is not None and not np.isfinite(W_star).all():
        notes.append(
            f"{int((~np.isfinite(W_star)).sum())} corrected weights W* are non-finite (their target neuron's "
            "f_theta has slope 0 in v); connectivity_R2 and the W sums leave them out / count them as 0"
        )
    if "tau_R2" in res and not np.isfinite(res["tau_R2"]):
        notes.append(
            "tau_R2 is NaN: the learned tau (clip(-1/slope_f, 0, 1)) is constant over neurons, i.e. f_theta "
            "has not learned a decay in v for any neuron (slopes >= 0 clip to 0 or 1)"
        )
    for k in ("W_sum_corr_in", "W_sum_corr_out", "V_rest_R2", "connectivity_R2"):
        if k in res and not np.isfinite(res[k]):
            notes.append(f"{k} is NaN: the learned values are constant (no variance to correlate)")
    if notes:
        res["notes"] = notes
    if return_arrays:
        res["arrays"] = {
            "tau": tau_l,
            "V_rest": vrest_l,
            "W_star": W_star,
            "W_raw": W_raw,
            "a": model.a.detach().cpu().double().numpy(),
            **lin,
        }
    return res
