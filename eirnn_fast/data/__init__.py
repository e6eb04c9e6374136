"""SC sessions: MAT loader (v5 and v7.3), splits, preprocessing, the embedded real sessions and
synthetic teacher sessions. scipy/h5py are imported only when a file is read or written."""

from eirnn_fast.data.embedded import (
    DEFAULT_SESSION,
    EMBEDDED_SESSION,
    EMBEDDED_SESSIONS,
    embedded_session_path,
    load_embedded_session,
)
from eirnn_fast.data.mat import read_mat, write_mat
from eirnn_fast.data.session import (
    DEFAULT_CLIP_PERCENTILE,
    INPUT_CHANNELS,
    REQUIRED_VARS,
    SCSession,
    clip_outliers,
    load_session,
    session_from_variables,
)
from eirnn_fast.data.splits import train_val_split, train_val_test_split
from eirnn_fast.data.synthetic import make_synthetic_session, make_synthetic_variables

__all__ = [
    "DEFAULT_CLIP_PERCENTILE",
    "DEFAULT_SESSION",
    "EMBEDDED_SESSION",
    "EMBEDDED_SESSIONS",
    "INPUT_CHANNELS",
    "REQUIRED_VARS",
    "SCSession",
    "clip_outliers",
    "embedded_session_path",
    "load_embedded_session",
    "load_session",
    "make_synthetic_session",
    "make_synthetic_variables",
    "read_mat",
    "session_from_variables",
    "train_val_split",
    "train_val_test_split",
    "write_mat",
]
