"""trial_matching_loss: faithful mode vs a direct transcription of the predecessor's formula,
default mode vs the op, condition groups, Poisson, gradients, bad input."""

import numpy as np
import pytest
import torch
from testutils import requires_compiled

from eirnn_fast.losses import trial_matching_loss
from eirnn_fast.ops import sinkhorn

pytestmark = requires_compiled


def rates(K, T, N, seed, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    return (5.0 + 10.0 * torch.rand(K, T, N, generator=gen, dtype=torch.float64)).to(dtype)


def predecessor_numpy(model, target, mask=None, poisson=False, eps=0.1, iters=20):
    """Direct float64 transcription of 6fa65af compute_L_trial (no autograd), written from its formula."""
    n_rec = target.shape[2]
    mp = model[:, :, :n_rec].mean(2)
    tp = target.mean(2)
    if mask is not None:
        mp, tp = mp * mask, tp * mask
    if poisson:
        m = np.maximum(mp, 1e-8)[:, None, :]
        t = np.maximum(tp, 1e-8)[None, :, :]
        D = (t * np.log(t + 1e-8) - t * np.log(m + 1e-8) - t + m).sum(2) / mp.shape[1]
    else:
        zm = (mp - mp.mean(0)) / (mp.std(0, ddof=1) + 1e-8)
        zt = (tp - tp.mean(0)) / (tp.std(0, ddof=1) + 1e-8)
        D = np.sqrt(((zm[:, None, :] - zt[None, :, :]) ** 2).sum(2))
    logK = -D / eps
    lu, lv = np.zeros(D.shape[0]), np.zeros(D.shape[1])

    def lse(a, axis):
        mx = a.max(axis=axis, keepdims=True)
        return (mx + np.log(np.exp(a - mx).sum(axis=axis, keepdims=True))).squeeze(axis)

    for _ in range(iters):
        lu = -lse(logK + lv[None, :], 1)
        lv = -lse(logK + lu[:, None], 0)
    P = np.exp(logK + lu[:, None] + lv[None, :])
    return (P * D).sum() / D.shape[0]


@pytest.mark.parametrize("poisson", [False, True])
@pytest.mark.parametrize("with_mask", [False, True])
def test_faithful_matches_predecessor_formula(poisson, with_mask):
    model = rates(30, 12, 9, seed=1)  # 9 model units, 6 recorded
    target = rates(30, 12, 6, seed=2)
    mask = None
    if with_mask:
        mask = torch.ones(30, 12, dtype=torch.float64)
        mask[::3, 8:] = 0.0
    loss = trial_matching_loss(model, target, faithful=True, cost="poisson" if poisson else "euclidean", mask=mask)
    expected = predecessor_numpy(model.numpy(), target.numpy(), None if mask is None else mask.numpy(), poisson)
    assert abs(loss.item() - expected) / abs(expected) < 1e-12


def test_faithful_gradient_is_unrolled_and_finite():
    model = rates(20, 10, 5, seed=3).requires_grad_()
    target = rates(20, 10, 5, seed=4)
    loss = trial_matching_loss(model, target, faithful=True)
    (g,) = torch.autograd.grad(loss, [model])
    assert torch.isfinite(g).all() and g.abs().sum() > 0


@pytest.mark.parametrize("cost", ["euclidean", "sqeuclidean", "poisson"])
@pytest.mark.parametrize("feature", ["pop_mean", "pop_mean_by_type", "full"])
def test_default_mode_is_the_op_on_features(cost, feature):
    model = rates(16, 8, 7, seed=5).requires_grad_()
    target = rates(14, 8, 5, seed=6)
    ntype = torch.tensor([1, 2, 1, 1, 2])
    loss = trial_matching_loss(model, target, feature=feature, cost=cost, eps=0.5, neuron_type=ntype, tol=1e-10)
    (g,) = torch.autograd.grad(loss, [model])
    assert torch.isfinite(g).all() and g[:, :, 5:].abs().sum() == 0  # unrecorded units get no gradient
    # direct construction
    m, t = model.detach()[:, :, :5], target
    if feature == "pop_mean":
        xm, xt = m.mean(2), t.mean(2)
    elif feature == "pop_mean_by_type":
        xm = torch.stack([m[:, :, ntype == k].mean(2) for k in (1, 2)], 2).flatten(1)
        xt = torch.stack([t[:, :, ntype == k].mean(2) for k in (1, 2)], 2).flatten(1)
    else:
        xm, xt = m.flatten(1), t.flatten(1)
    if cost != "poisson":
        xm = (xm - xm.mean(0)) / xm.std(0)  # ours: no +1e-8 (constant features are set to 0)
        xt = (xt - xt.mean(0)) / xt.std(0)
    v = sinkhorn(xm[None], xt[None], eps=0.5, cost=cost, tol=1e-10, backend="reference")
    assert abs(loss.item() - v.item()) < 1e-9 * max(1.0, abs(v.item()))


def test_groups_equal_weighted_per_group_solves():
    model = rates(18, 6, 4, seed=7).requires_grad_()
    target = rates(18, 6, 4, seed=8)
    labels = torch.tensor([0, 1, 2] * 6)
    labels[:2] = 2  # uneven group sizes: 0 -> 5, 1 -> 5, 2 -> 8
    loss = trial_matching_loss(model, target, groups=labels, eps=0.2, tol=1e-11)
    (g,) = torch.autograd.grad(loss, [model])
    assert torch.isfinite(g).all()
    # the per-side z-score is computed over all trials, then each group solved alone
    xm, xt = model.detach().mean(2), target.mean(2)
    xm = (xm - xm.mean(0)) / xm.std(0)
    xt = (xt - xt.mean(0)) / xt.std(0)
    tot, cnt = 0.0, 0
    for k in (0, 1, 2):
        sel = labels == k
        v = sinkhorn(xm[sel][None], xt[sel][None], eps=0.2, cost="euclidean", tol=1e-11)
        tot += v.item() * int(sel.sum())
        cnt += int(sel.sum())
    assert abs(loss.item() - tot / cnt) < 1e-9


def test_groups_pair_and_debias():
    model = rates(10, 5, 3, seed=9)
    target = rates(12, 5, 3, seed=10)
    gm = torch.tensor([0, 1] * 5)
    gt = torch.tensor([0, 0, 1] * 4)
    loss = trial_matching_loss(model, target, groups=(gm, gt), eps=0.3, debias=True)
    assert torch.isfinite(loss) and loss.item() > 0


@pytest.mark.parametrize(
    "kwargs,exc,match",
    [
        (dict(feature="psth"), ValueError, "feature"),
        (dict(feature="pop_mean_by_type"), ValueError, "neuron_type"),
        (dict(zscore="global"), ValueError, "zscore"),
        (dict(cost="poisson", zscore="per_side"), ValueError, "zscore=None"),
        (dict(cost="cosine"), ValueError, "cost"),
        (dict(faithful=True, cost="sqeuclidean"), ValueError, "faithful"),
        (dict(groups=torch.tensor([0, 1])), ValueError, "groups"),
        (dict(mask=torch.ones(3, 3)), ValueError, "mask"),
        (dict(eps=-1.0), ValueError, "eps"),
    ],
)
def test_bad_input(kwargs, exc, match):
    model = rates(6, 4, 3, seed=11)
    target = rates(6, 4, 3, seed=12)
    with pytest.raises(exc, match=match):
        trial_matching_loss(model, target, **kwargs)


def test_float32_runs_fused():
    model = rates(40, 20, 8, seed=13, dtype=torch.float32).requires_grad_()
    target = rates(40, 20, 8, seed=14, dtype=torch.float32)
    loss = trial_matching_loss(model, target, eps=0.1)
    loss.backward()
    assert loss.dtype == torch.float32 and torch.isfinite(model.grad).all()


def test_the_loss_does_not_warn_per_step_but_can():
    """A training loss runs a fixed-budget solve every step: no per-step warning by default; the
    sinkhorn op's policy is reachable (warn / raise)."""
    import warnings

    from eirnn_fast.ops import SinkhornConvergenceError

    g = torch.Generator().manual_seed(0)
    m, t = torch.rand(40, 30, 5, generator=g), torch.rand(40, 30, 5, generator=g)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        trial_matching_loss(m, t, eps=1e-3, max_iter=3)
    with pytest.warns(UserWarning):
        trial_matching_loss(m, t, eps=1e-3, max_iter=3, on_nonconvergence="warn")
    with pytest.raises(SinkhornConvergenceError):
        trial_matching_loss(m, t, eps=1e-3, max_iter=3, on_nonconvergence="raise")


def test_constant_features_give_no_spurious_float32_gradient():
    """The per-side z-score makes the loss invariant to a gain on a trial-invariant component, and bin 0
    is the same in every model trial: the gradient of that gain is exactly 0. With std + 1e-8 the
    float32 rounding residue of the constant bin gave O(1) gradients (2.0 here); float64 gave ~1e-10."""
    for dtype, tol in ((torch.float32, 1e-3), (torch.float64, 1e-9)):
        g = torch.Generator().manual_seed(0)
        base = (torch.rand(30, 5, generator=g) * 20).to(dtype)
        target = (torch.rand(40, 30, 5, generator=g) * 20).to(dtype)
        var = (torch.rand(40, 30, 5, generator=g) * 5).to(dtype)
        var[:, 0] = 0  # bin 0 identical across model trials
        gain = torch.tensor(1.0, dtype=dtype, requires_grad=True)
        loss = trial_matching_loss(base[None].expand(40, 30, 5) * gain + var, target, eps=0.1)
        (dg,) = torch.autograd.grad(loss, [gain])
        assert abs(float(dg)) < tol, (dtype, float(dg))


@pytest.mark.parametrize("faithful", [False, True])
def test_recorded_indices_population_mean_equals_the_gathered_rates(faithful):
    """recorded_indices: the population mean is a weighted sum over all units (no gather); same loss
    and gradient as gathering the recorded units first (float64); an index outside is a ValueError."""
    from eirnn_fast.losses import trial_matching_loss

    g = torch.Generator().manual_seed(5)
    rates = torch.rand(12, 9, 10, generator=g, dtype=torch.float64, requires_grad=True)
    target = torch.rand(12, 9, 4, generator=g, dtype=torch.float64)
    mask = (torch.rand(12, 9, generator=g) > 0.1).double()
    idx = torch.tensor([7, 2, 9, 0])
    kw = dict(mask=mask, faithful=faithful, backend="reference")
    a = trial_matching_loss(rates, target, recorded_indices=idx, **kw)
    b = trial_matching_loss(rates[:, :, idx], target, **kw)
    ga, gb = (torch.autograd.grad(x, rates)[0] for x in (a, b))
    assert float(a) == pytest.approx(float(b), rel=1e-10)
    assert torch.allclose(ga, gb, rtol=1e-8, atol=1e-12)
    with pytest.raises(ValueError, match="recorded_indices"):
        trial_matching_loss(rates, target, recorded_indices=torch.tensor([10, 0, 1, 2]), **kw)


@pytest.mark.parametrize("which", ["model_rates", "target_rates"])
@pytest.mark.parametrize("dtype", [torch.long, torch.int32, torch.bool])
def test_integer_rates_are_a_type_error_naming_the_argument(which, dtype):
    # before: torch's "mean(): could not infer output dtype" from deep inside the loss
    rates = {"model_rates": torch.rand(4, 6, 3), "target_rates": torch.rand(5, 6, 3)}
    rates[which] = torch.ones(rates[which].shape, dtype=dtype)
    with pytest.raises(TypeError, match=rf"{which} must be a floating-point tensor .*{dtype}"):
        trial_matching_loss(rates["model_rates"], rates["target_rates"])
