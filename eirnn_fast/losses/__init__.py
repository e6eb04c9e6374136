"""Losses for fitting SC data: L_neuron (PSTH), regularisers, gradient balancing.

``trial_matching_loss`` (L_trial on the batched Sinkhorn op) comes from another branch; until it is
merged, :func:`get_trial_matching_loss` returns a private faithful fallback
(:mod:`eirnn_fast.losses._trial_fallback`).
"""
from eirnn_fast.losses.balancing import BALANCE_MODES, GradientBalancer
from eirnn_fast.losses.neuron import l_neuron, masked_psth, smooth_time
from eirnn_fast.losses.regularizers import l_activity, l_reg


def get_trial_matching_loss():
    """``(fn, name)``: ``eirnn_fast.losses.trial_matching_loss`` when this installation has it, else
    the private fallback (``name`` says which, and is recorded with each run)."""
    import eirnn_fast.losses as _self

    fn = getattr(_self, "trial_matching_loss", None)
    if fn is not None:
        return fn, "eirnn_fast.losses.trial_matching_loss"
    from eirnn_fast.losses._trial_fallback import trial_matching_loss_fallback

    return trial_matching_loss_fallback, "eirnn_fast.losses._trial_fallback (faithful, plain torch)"


__all__ = ["BALANCE_MODES", "GradientBalancer", "get_trial_matching_loss", "l_activity", "l_neuron", "l_reg",
           "masked_psth", "smooth_time"]
