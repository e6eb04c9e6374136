"""The FlyVis GNN trainer, one module per job; this module gathers their public names (the import path
of the README, the CLI and the tests):

* :mod:`~eirnn_fast.flyvis.train_config`: :class:`FlyVisTrainConfig` (YAML, old and new parameter
  names, validation) and :func:`epochs_to_run`;
* :mod:`~eirnn_fast.flyvis.train_data`: :func:`load_training_data`, :func:`training_data_from_generated`,
  :func:`graph_from_data`;
* :mod:`~eirnn_fast.flyvis.build`: :func:`build_model`, :func:`make_optimizer` (Adam parameter groups);
* :mod:`~eirnn_fast.flyvis.objective`: the data loss, the regularisers and their annealing;
* :mod:`~eirnn_fast.flyvis.checkpoints`: the run folder's checkpoint, resume rule and legacy defaults;
* :mod:`~eirnn_fast.flyvis.loop`: the training loop :func:`train_flyvis_gnn`;
* :mod:`~eirnn_fast.flyvis.commands`: ``flyvis train`` / ``flyvis evaluate`` as functions, :func:`load_run`.
"""

from eirnn_fast.flyvis.build import build_model, make_optimizer
from eirnn_fast.flyvis.checkpoints import (
    CHECKPOINT_FORMAT,
    FLYVIS_OUTPUTS,
    READABLE_FORMATS,
    reconcile_resume_config,
)
from eirnn_fast.flyvis.commands import flyvis_evaluate_main, flyvis_train_main, load_run
from eirnn_fast.flyvis.loop import train_flyvis_gnn
from eirnn_fast.flyvis.objective import annealed_coefficients, data_loss, regularization_terms
from eirnn_fast.flyvis.train_config import ALIASES, FlyVisTrainConfig, epochs_to_run
from eirnn_fast.flyvis.train_data import graph_from_data, load_training_data, training_data_from_generated

__all__ = [
    "ALIASES",
    "FlyVisTrainConfig",
    "epochs_to_run",
    "training_data_from_generated",
    "load_training_data",
    "graph_from_data",
    "build_model",
    "make_optimizer",
    "annealed_coefficients",
    "regularization_terms",
    "data_loss",
    "FLYVIS_OUTPUTS",
    "CHECKPOINT_FORMAT",
    "READABLE_FORMATS",
    "reconcile_resume_config",
    "train_flyvis_gnn",
    "load_run",
    "flyvis_evaluate_main",
    "flyvis_train_main",
]
