"""Models: the drop-in Dale's-law E-I RNN, its input embeddings and constraint parameterisations."""

from eirnn_fast.models.eirnn import EIRNN, create_model_from_data, ei_unit_counts, recorded_unit_index, select_units
from eirnn_fast.models.embeddings import EMBED_TYPES, make_input_embedding

__all__ = [
    "EIRNN",
    "create_model_from_data",
    "ei_unit_counts",
    "recorded_unit_index",
    "select_units",
    "EMBED_TYPES",
    "make_input_embedding",
]
