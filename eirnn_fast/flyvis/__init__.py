"""FlyVis: the Drosophila optic-lobe connectome, ground-truth parameters, stimuli and simulator."""
from eirnn_fast.flyvis.connectome import Connectome, compile_connectome, load_connectome, load_spec

__all__ = ["Connectome", "compile_connectome", "load_connectome", "load_spec"]
