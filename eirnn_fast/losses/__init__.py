"""Losses for fitting SC data: L_neuron (PSTH), L_rate (per-neuron rates), L_trial (trial matching on the batched Sinkhorn op),
regularisers and gradient balancing. Where our definition differs from the predecessor's, both
exist under their own names (``l_reg_sum`` / ``l_reg_mean``, ``l_activity_relative`` /
``l_activity_predecessor``, ``l_neuron(mask_mode="valid" | "multiply")``, ``trial_matching_loss`` /
``faithful_trial_matching_loss``)."""

from eirnn_fast.losses.balancing import BALANCE_MODES, GradientBalancer
from eirnn_fast.losses.neuron import MASK_MODES, l_neuron, masked_psth, smooth_time
from eirnn_fast.losses.rates import RATE_FORMS, RATE_OFFSET, l_rate
from eirnn_fast.losses.regularizers import (
    ACTIVITY_FORMS,
    REG_FORMS,
    REG_FUNCTIONS,
    l_activity,
    l_activity_predecessor,
    l_activity_relative,
    l_reg,
    l_reg_mean,
    l_reg_sum,
)
from eirnn_fast.losses.trial_matching import faithful_trial_matching_loss, trial_features, trial_matching_loss


def get_trial_matching_loss():
    """``(fn, name)`` of the L_trial implementation the trainer uses (``name`` is recorded with each run)."""
    return trial_matching_loss, "eirnn_fast.losses.trial_matching_loss"


__all__ = [
    "ACTIVITY_FORMS",
    "BALANCE_MODES",
    "GradientBalancer",
    "MASK_MODES",
    "RATE_FORMS",
    "RATE_OFFSET",
    "REG_FORMS",
    "REG_FUNCTIONS",
    "faithful_trial_matching_loss",
    "get_trial_matching_loss",
    "l_activity",
    "l_activity_predecessor",
    "l_activity_relative",
    "l_neuron",
    "l_rate",
    "l_reg",
    "l_reg_mean",
    "l_reg_sum",
    "masked_psth",
    "smooth_time",
    "trial_features",
    "trial_matching_loss",
]
