"""FlyVis: the Drosophila optic-lobe connectome, ground-truth parameters, stimuli, simulator and the
GNN that recovers the connectome from simulated activity (GNN names are imported lazily)."""

import importlib

from eirnn_fast.flyvis.connectome import Connectome, compile_connectome, load_connectome, load_spec
from eirnn_fast.flyvis.parameters import FlyVisParameters, load_parameters, sample_parameters, weight_statistics
from eirnn_fast.flyvis.simulator import (
    GenerateConfig,
    SimulationResult,
    fused_available,
    generate_dataset,
    load_dataset,
    simulate,
    simulate_iter,
)
from eirnn_fast.flyvis.stimuli import StimulusSet, columns_to_neurons, make_stimuli

_LAZY = {
    "FlyVisGNN": "eirnn_fast.flyvis.gnn",
    "GNNGraph": "eirnn_fast.flyvis.gnn",
    "FlyVisTrainConfig": "eirnn_fast.flyvis.train_config",
    "train_flyvis_gnn": "eirnn_fast.flyvis.loop",
    "flyvis_train_main": "eirnn_fast.flyvis.commands",
    "flyvis_evaluate_main": "eirnn_fast.flyvis.commands",
}


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'eirnn_fast.flyvis' has no attribute {name!r}")


__all__ = [
    "Connectome",
    "compile_connectome",
    "load_connectome",
    "load_spec",
    "FlyVisParameters",
    "load_parameters",
    "sample_parameters",
    "weight_statistics",
    "StimulusSet",
    "columns_to_neurons",
    "make_stimuli",
    "GenerateConfig",
    "SimulationResult",
    "fused_available",
    "generate_dataset",
    "load_dataset",
    "simulate",
    "simulate_iter",
    *_LAZY,
]
