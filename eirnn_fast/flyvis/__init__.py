"""FlyVis: the Drosophila optic-lobe connectome, ground-truth parameters, stimuli and simulator."""
from eirnn_fast.flyvis.connectome import Connectome, compile_connectome, load_connectome, load_spec
from eirnn_fast.flyvis.parameters import FlyVisParameters, load_parameters, sample_parameters, weight_statistics
from eirnn_fast.flyvis.stimuli import StimulusSet, columns_to_neurons, make_stimuli
from eirnn_fast.flyvis.simulator import (GenerateConfig, SimulationResult, fused_available, generate_dataset,
                                         load_dataset, simulate, simulate_iter)

__all__ = [
    "Connectome", "compile_connectome", "load_connectome", "load_spec",
    "FlyVisParameters", "load_parameters", "sample_parameters", "weight_statistics",
    "StimulusSet", "columns_to_neurons", "make_stimuli",
    "GenerateConfig", "SimulationResult", "fused_available", "generate_dataset", "load_dataset", "simulate",
    "simulate_iter",
]
