"""eirnn_fast: fused C++/CUDA ops and pipelines for biologically constrained recurrent networks."""

from eirnn_fast import ops, reference
from eirnn_fast._ext import backend_info
from eirnn_fast.models import EIRNN, create_model_from_data
from eirnn_fast.runtime import tune_cpu_allocator

__version__ = "0.1.0"

__all__ = [
    "backend_info",
    "ops",
    "reference",
    "EIRNN",
    "create_model_from_data",
    "tune_cpu_allocator",
    "__version__",
]
