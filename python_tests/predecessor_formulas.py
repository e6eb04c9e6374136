"""The predecessor's loss formulas written out by hand for the tests (jamespherman/4factors-rnn-analysis
@ 6fa65af, src/losses.py), in plain torch on float64 tensors, independent of eirnn_fast.losses.
Each takes the *recorded units'* rates as the predecessor selected them, ``model_rates[:, :, :n]``."""

import torch


def l_neuron(m, t, mask):
    """compute_L_neuron (l. 125-210): multiply by the mask, trial mean over all trials, Pearson per
    neuron with norms clamped at 1e-6, + 0.1 L_scale + 0.05 L_var (unbiased variances)."""
    m, t = m * mask[..., None], t * mask[..., None]
    pm, pt = m.mean(0), t.mean(0)  # [T, N]; its 8-ms Gaussian is a 1-bin no-op at 25-ms bins
    cm, ct = pm - pm.mean(0), pt - pt.mean(0)
    r = (cm * ct).sum(0) / ((cm**2).sum(0).sqrt().clamp(min=1e-6) * (ct**2).sum(0).sqrt().clamp(min=1e-6))
    l_corr = (1 - r.clamp(-1, 1)).mean()
    l_scale = (pm.mean() - pt.mean()) ** 2 / pt.var().clamp(min=1e-6)
    mv, tv = pm.var(0).mean(), pt.var(0).mean()
    return l_corr + 0.1 * l_scale + 0.05 * (mv - tv) ** 2 / (tv**2 + 1e-6)


def l_trial(m, t, mask, eps=0.1, n_iters=20, poisson=False):
    """compute_L_trial + sinkhorn_assignment (l. 513-655): population mean per trial and bin,
    masked; Euclidean mode: z-scored per bin across trials with each side's own mean and std
    (+1e-8), unsquared distances; Poisson mode: sum_t [y log(y + 1e-8) - y log(m + 1e-8) - y + m] / T
    on rates clamped at 1e-8. Then 20 log-domain iterations with unit marginals, <P, D> / n."""
    mp, tp = m.mean(2) * mask, t.mean(2) * mask  # [K, T]
    if poisson:
        x, y = mp.clamp(min=1e-8)[:, None, :], tp.clamp(min=1e-8)[None, :, :]
        d = (y * torch.log(y + 1e-8) - y * torch.log(x + 1e-8) - y + x).sum(2) / mp.shape[1]
    else:
        zm = (mp - mp.mean(0)) / (mp.std(0) + 1e-8)
        zt = (tp - tp.mean(0)) / (tp.std(0) + 1e-8)
        d = ((zm[:, None, :] - zt[None, :, :]) ** 2).sum(2).sqrt()  # [K, K]
    log_k = -d / eps
    log_u = torch.zeros(d.shape[0], dtype=d.dtype)
    log_v = torch.zeros(d.shape[1], dtype=d.dtype)
    for _ in range(n_iters):
        log_u = -torch.logsumexp(log_k + log_v[None, :], dim=1)
        log_v = -torch.logsumexp(log_k + log_u[:, None], dim=0)
    p = torch.exp(log_k + log_u[:, None] + log_v[None, :])
    return (p * d).sum() / d.shape[0]


def l_reg(w_rec, w_in, lambda_l2=1e-4):
    """compute_L_reg (l. 690-720): lambda * (mean(W_rec^2) + mean(W_in^2))."""
    return lambda_l2 * ((w_rec**2).mean() + (w_in**2).mean())


def l_activity(m, lambda_mean, target_mean=10.0, target_max=100.0, lambda_max=0.001):
    """compute_activity_regularization (l. 477-510)."""
    excess = torch.relu(m.max(dim=1)[0].max(dim=0)[0] - target_max)
    return lambda_mean * (m.mean() - target_mean) ** 2 + lambda_max * (excess**2).mean()
