"""FlyVis: connectome, simulator, GNN recovery (lazy imports keep `import eirnn_fast.flyvis` cheap)."""
import importlib

_LAZY = {
    "FlyVisGNN": "eirnn_fast.flyvis.gnn",
    "GNNGraph": "eirnn_fast.flyvis.gnn",
    "FlyVisTrainConfig": "eirnn_fast.flyvis.train",
    "train_flyvis_gnn": "eirnn_fast.flyvis.train",
    "flyvis_train_main": "eirnn_fast.flyvis.train",
    "flyvis_evaluate_main": "eirnn_fast.flyvis.train",
}


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'eirnn_fast.flyvis' has no attribute {name!r}")
