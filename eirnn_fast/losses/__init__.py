"""Losses for fitting SC data: L_neuron (PSTH), L_trial (trial matching on the batched Sinkhorn op),
regularisers and gradient balancing."""

from eirnn_fast.losses.balancing import BALANCE_MODES, GradientBalancer
from eirnn_fast.losses.neuron import l_neuron, masked_psth, smooth_time
from eirnn_fast.losses.regularizers import l_activity, l_reg
from eirnn_fast.losses.trial_matching import faithful_trial_matching_loss, trial_features, trial_matching_loss


def get_trial_matching_loss():
    """``(fn, name)`` of the L_trial implementation the trainer uses (``name`` is recorded with each run)."""
    return trial_matching_loss, "eirnn_fast.losses.trial_matching_loss"


__all__ = [
    "BALANCE_MODES",
    "GradientBalancer",
    "faithful_trial_matching_loss",
    "get_trial_matching_loss",
    "l_activity",
    "l_neuron",
    "l_reg",
    "masked_psth",
    "smooth_time",
    "trial_features",
    "trial_matching_loss",
]
