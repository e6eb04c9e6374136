"""SC training: :class:`FitConfig`, :func:`fit` (train / select on validation / report on test),
the protocol presets (:mod:`eirnn_fast.train.protocols`)."""

from eirnn_fast.train.config import FitConfig, protocol_fields, read_config_file
from eirnn_fast.train.fit import (
    build_model,
    cosine_factor,
    fit,
    load_fit_data,
    loss_terms,
    make_split,
    predict,
    seed_everything,
    trial_weight_at,
)
from eirnn_fast.train.protocols import PROTOCOLS

__all__ = [
    "PROTOCOLS",
    "FitConfig",
    "build_model",
    "cosine_factor",
    "fit",
    "load_fit_data",
    "loss_terms",
    "make_split",
    "predict",
    "protocol_fields",
    "read_config_file",
    "seed_everything",
    "trial_weight_at",
]
