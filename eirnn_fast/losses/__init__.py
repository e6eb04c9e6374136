"""Losses: trial matching (L_trial) and friends."""
from eirnn_fast.losses.trial_matching import faithful_trial_matching_loss, trial_features, trial_matching_loss

__all__ = ["trial_matching_loss", "faithful_trial_matching_loss", "trial_features"]
