"""SC training: :class:`FitConfig`, :func:`fit` (train / select on validation / report on test)."""

from eirnn_fast.train.config import FitConfig, read_config_file
from eirnn_fast.train.fit import build_model, fit, load_fit_data, predict, seed_everything, trial_weight_at

__all__ = [
    "FitConfig",
    "build_model",
    "fit",
    "load_fit_data",
    "predict",
    "read_config_file",
    "seed_everything",
    "trial_weight_at",
]
