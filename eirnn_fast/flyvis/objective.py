"""The FlyVis GNN trainer's objective: the data loss, the regularisers and their annealing.

Loss per iteration (saalfeldlab/flyvis-gnn ``data_train_flyvis`` semantics):

* one-step (default): ``|| f(v_k, I_k) - y_k ||_2`` over all ``B * N`` neurons of the batch (an
  L2 *norm*, not a mean squared error), frames ``k`` drawn i.i.d. uniformly per iteration from a
  ``RandomState(seed + epoch)``;
* recurrent (``recurrent_training`` and ``epoch >= recurrent_training_start_epoch``): start frames
  aligned ``k -= k % time_step``, the model is rolled out ``time_step`` explicit-Euler steps on its
  own predictions (``v <- v + dt * f(v, I_{k+s}) + noise_recurrent_level * N(0, 1)``, stimulus from
  the data) and the loss is ``|| (v_pred(k+T) - x(k+T)) / (dt * T) ||_2`` against the observed voltage.

Regularisers (computed once per iteration on the first frame of the batch, all neurons; the g_phi
terms see detached inputs so they move g_phi only, not the embedding):

* ``coeff_W_L1 * ||W||_1``;
* ``coeff_W_L2 * ||W||_2`` (norm, not squared). **Matches the reference quirk: W_L2 is NOT applied
  when coeff_W_L1 > 0** (the reference sets its "L1 applied" flag before testing L2). Set
  ``W_L2_with_L1: true`` to apply both.
* ``coeff_g_phi_diff * || ReLU(g(v_i, a_i)^2 - g(v_i + 0.05 xnorm, a_i)^2) ||_2`` (monotonicity of
  g_phi in v; old name ``coeff_edge_diff``);
* ``coeff_g_phi_norm * || g(2 xnorm, a_i)^2 - 2 xnorm ||_2`` (pins g_phi's scale to ReLU's, removing
  the W <-> g_phi degeneracy; old name ``coeff_edge_norm``), ``xnorm = 1.5 * std(training voltages)``;
* ``sum_p (c1 ||p||_1 + c2 ||p||_2)`` over g_phi parameters (``coeff_g_phi_weight_L1/L2``, old
  ``coeff_edge_weight_L1/L2``) and over f_theta parameters (``coeff_f_theta_weight_L1/L2``, old
  ``coeff_phi_weight_L1/L2``).

Annealing: the six L1/L2 coefficients are multiplied by ``1 - exp(-rate * epoch)`` when ``rate > 0``
(``regul_annealing_rate``; per-term overrides ``coeff_W_L1_rate``, ``coeff_g_phi_weight_L1_rate``,
``coeff_f_theta_weight_L1_rate`` as in the older NeuralGraph code); rate 0 means no annealing.
"""

from __future__ import annotations

import math
from typing import Dict, Optional

import numpy as np
import torch

from eirnn_fast.flyvis.gnn import FlyVisGNN
from eirnn_fast.flyvis.train_config import FlyVisTrainConfig


def annealed_coefficients(config: FlyVisTrainConfig, epoch: int) -> Dict[str, float]:
    """Regulariser coefficients at ``epoch`` (an integer: set once per epoch, as both references do).

    ``annealing="neuralgraph"`` (default, the code the seeds ran): ``W_L1``, ``g_phi_weight_L1`` and
    ``f_theta_weight_L1`` are ``coeff * (1 - exp(-rate * epoch))`` with their own rates (0.5, 0.5 and
    seed 004's 0.4), so all three are 0 in epoch 0 and 0.39x / 0.39x / 0.33x in epoch 1; a rate of 0
    switches a term off for good; the L2 terms, W_L2, g_phi_diff and g_phi_norm are never annealed.
    ``annealing="flyvis_gnn"``: ``regul_annealing_rate`` (when > 0) anneals all six L1/L2 terms with the
    same formula; 0 means no annealing (full strength from the first iteration)."""
    e = float(epoch)

    def ng(c, rate):
        return c * (1.0 - math.exp(-(0.0 if rate is None else rate) * e))

    def fg(c):
        r = config.regul_annealing_rate
        return c * (1.0 - math.exp(-r * e)) if r > 0 else c

    if config.annealing == "neuralgraph":
        out = {
            "W_L1": ng(config.coeff_W_L1, config.coeff_W_L1_rate),
            "W_L2": config.coeff_W_L2,
            "g_phi_weight_L1": ng(config.coeff_g_phi_weight_L1, config.coeff_g_phi_weight_L1_rate),
            "g_phi_weight_L2": config.coeff_g_phi_weight_L2,
            "f_theta_weight_L1": ng(config.coeff_f_theta_weight_L1, config.coeff_f_theta_weight_L1_rate),
            "f_theta_weight_L2": config.coeff_f_theta_weight_L2,
        }
    else:
        out = {
            k: fg(getattr(config, "coeff_" + k))
            for k in ("W_L1", "W_L2", "g_phi_weight_L1", "g_phi_weight_L2", "f_theta_weight_L1", "f_theta_weight_L2")
        }
    out.update(g_phi_diff=config.coeff_g_phi_diff, g_phi_norm=config.coeff_g_phi_norm)
    return out


def regularization_terms(
    model: FlyVisGNN,
    v: torch.Tensor,
    xnorm: float,
    coeffs: Dict[str, float],
    W_L2_with_L1: bool = True,
    *,
    f_theta_L1_norm: str = "l2",
    diff_step: str = "multiplicative",
    detach_embedding: bool = False,
    generator: Optional[torch.Generator] = None,
):
    """Regularisers (module docstring) on the voltages ``v [N]`` of one frame. Returns ``(total, parts)``
    with ``parts`` a dict of the weighted terms (tensors). ``generator`` draws variant B's permutation
    of source embeddings."""
    parts: Dict[str, torch.Tensor] = {}
    if coeffs["W_L1"] > 0:
        parts["W_L1"] = coeffs["W_L1"] * model.W.norm(1)
    if coeffs["W_L2"] > 0 and (coeffs["W_L1"] <= 0 or W_L2_with_L1):
        parts["W_L2"] = coeffs["W_L2"] * model.W.norm(2)
    for name, mlp, l1 in (("g_phi", model.g_phi, 1), ("f_theta", model.f_theta, 1 if f_theta_L1_norm == "l1" else 2)):
        c1, c2 = coeffs[f"{name}_weight_L1"], coeffs[f"{name}_weight_L2"]
        if c1 + c2 > 0:
            parts[f"{name}_weight"] = sum(c1 * p.norm(l1) + c2 * p.norm(2) for p in mlp.parameters())
    if coeffs["g_phi_diff"] > 0 or coeffs["g_phi_norm"] > 0:
        a = model.a.detach() if detach_embedding else model.a
        v = v.detach().reshape(-1, 1)
        if model.variant == "A":  # inputs [v_j, a_j], each neuron as a source
            g = lambda vj: model.g_phi_node(vj, a)  # noqa: E731
            g_norm = lambda: model.g_phi_node(torch.full_like(v, 2.0 * xnorm), a)  # noqa: E731
        else:  # [v_i, v_j, a_i, a_perm]: each neuron paired with a random source embedding, only v_j varied
            perm = torch.randperm(a.shape[0], generator=generator).to(a.device)
            g = lambda vj: model.g_phi_edge(v, vj, a, a[perm])  # noqa: E731
            g_norm = lambda: model.g_phi_edge(torch.full_like(v, 2.0 * xnorm), v, a, a[perm])  # noqa: E731
        if coeffs["g_phi_diff"] > 0:
            v1 = v * 1.05 if diff_step == "multiplicative" else v + 0.05 * xnorm
            parts["g_phi_diff"] = coeffs["g_phi_diff"] * torch.relu(g(v) - g(v1)).norm(2)
        if coeffs["g_phi_norm"] > 0:  # the references set input column 0 to 2 xnorm (v_j in A, v_i in B)
            parts["g_phi_norm"] = coeffs["g_phi_norm"] * (g_norm() - 2.0 * xnorm).norm(2)
    total = sum(parts.values()) if parts else model.W.new_zeros(())
    return total, parts


def data_loss(model: FlyVisGNN, xt, yt, It, k: np.ndarray, dt: float, steps: int, noise: float) -> torch.Tensor:
    """One-step derivative loss (steps == 0) or the recurrent rollout loss over ``steps`` steps.
    xt, yt, It ``[T, N]`` tensors; k ``[B]`` start frames."""
    kk = torch.as_tensor(k, device=xt.device)
    v = xt[kk].t()  # [N, B]
    if steps == 0:
        return (model(v, It[kk].t()) - yt[kk].t()).norm(2)
    for s in range(steps):
        v = v + dt * model(v, It[kk + s].t())
        if noise > 0:
            v = v + noise * torch.randn_like(v)
    return ((v - xt[kk + steps].t()) / (dt * steps)).norm(2)
