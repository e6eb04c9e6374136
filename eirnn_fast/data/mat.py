"""Reading and writing MATLAB ``.mat`` files in MATLAB axis order, for v5 (scipy) and v7.3 (HDF5/h5py).

Both readers return ``{name: value}`` with every numeric array in **MATLAB order** (h5py's reversed
axes are undone here), strings as ``str`` and nothing squeezed: a ``1 x 1`` scalar stays ``(1, 1)``,
a ``N x 1`` vector stays ``(N, 1)``. Squeezing is the schema's job (:mod:`eirnn_fast.data.session`),
which knows which axes may be length 1. scipy and h5py are imported lazily.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Dict, Mapping, Union

import numpy as np

PathLike = Union[str, "os.PathLike[str]"]

_MAT73_HEADER = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Thu Jan  1 00:00:00 1970 HDF5 schema 1.00 ."


def mat_format(path: PathLike) -> str:
    """``'v5'`` or ``'v7.3'`` for a readable MAT file; ``ValueError`` naming the file otherwise."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path}: is a directory, not a MAT file")
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    with open(path, "rb") as fh:
        head = fh.read(128)
    if len(head) < 128:
        raise ValueError(f"{path}: not a MAT file (only {len(head)} bytes)")
    import h5py

    if h5py.is_hdf5(str(path)):
        return "v7.3"
    # v5 header: 116 bytes text, 8 subsys offset, 2 version (0x0100), 2 endian indicator ('IM' or 'MI')
    if head[126:128] in (b"IM", b"MI") and not head.startswith(b"MATLAB 7.3"):
        return "v5"
    if head.startswith(b"MATLAB 7.3"):
        raise ValueError(f"{path}: corrupt MAT file (v7.3 header but no readable HDF5 content)")
    raise ValueError(f"{path}: not a MAT file (no v5 header and not HDF5)")


def read_mat(path: PathLike) -> Dict[str, object]:
    """All top-level variables of a v5 or v7.3 MAT file, arrays in MATLAB order, strings as ``str``."""
    fmt = mat_format(path)
    try:
        data = _read_v73(path) if fmt == "v7.3" else _read_v5(path)
    except ValueError:
        raise
    except Exception as exc:  # truncated/corrupt payloads surface as many exception types
        raise ValueError(f"{path}: corrupt {fmt} MAT file ({type(exc).__name__}: {exc})") from exc
    data["__format__"] = fmt
    return data


def _read_v5(path: PathLike) -> Dict[str, object]:
    import scipy.io

    raw = scipy.io.loadmat(str(path), squeeze_me=False, chars_as_strings=True, struct_as_record=False)
    out: Dict[str, object] = {}
    for key, value in raw.items():
        if key.startswith("__"):
            continue
        if isinstance(value, np.ndarray) and value.dtype.kind == "U":
            out[key] = "".join(value.ravel().tolist()).rstrip("\x00")
        elif isinstance(value, np.ndarray) and value.dtype.kind in "biuf":
            out[key] = value
        else:
            warnings.warn(
                f"{path}: variable {key!r} ({type(value).__name__}) is not part of schema v1; ignored", stacklevel=3
            )
    return out


def _read_v73(path: PathLike) -> Dict[str, object]:
    import h5py

    out: Dict[str, object] = {}
    with h5py.File(str(path), "r") as fh:
        for key in fh.keys():
            if key.startswith("#"):  # '#refs#', '#subsystem#'
                continue
            item = fh[key]
            cls = item.attrs.get("MATLAB_class", b"")
            cls = cls.decode() if isinstance(cls, bytes) else str(cls)
            if not isinstance(item, h5py.Dataset) or cls in ("cell", "struct"):
                warnings.warn(
                    f"{path}: variable {key!r} (MATLAB class {cls or 'group'}) is not part of schema v1; ignored",
                    stacklevel=3,
                )
                continue
            if int(item.attrs.get("MATLAB_empty", 0)):
                out[key] = np.zeros([int(s) for s in np.asarray(item[()]).ravel()][::-1]) if cls != "char" else ""
                continue
            arr = np.asarray(item[()])
            if cls == "char":
                out[key] = "".join(map(chr, arr.T.ravel().tolist())).rstrip("\x00")
                continue
            arr = np.ascontiguousarray(arr.T)  # HDF5 (row-major view of column-major data) -> MATLAB order
            if cls == "logical":
                arr = arr.astype(bool)
            out[key] = arr
    return out


def write_mat(path: PathLike, variables: Mapping[str, object], fmt: str = "v7.3") -> Path:
    """Write ``variables`` (arrays in MATLAB order, strings, scalars) as a v5 or v7.3 MAT file.

    v7.3 is written the way MATLAB writes it: axes reversed on disk, ``MATLAB_class`` attributes,
    ``char`` as ``uint16`` ``(L, 1)`` and a 512-byte userblock with the MATLAB header text, so both
    MATLAB's ``load`` and this package's reader accept it.
    """
    path = Path(path)
    if fmt == "v5":
        import scipy.io

        scipy.io.savemat(
            str(path), {k: v for k, v in variables.items()}, format="5", do_compression=True, oned_as="column"
        )
        return path
    if fmt != "v7.3":
        raise ValueError(f"fmt must be 'v5' or 'v7.3', got {fmt!r}")
    import h5py

    with h5py.File(str(path), "w", userblock_size=512) as fh:
        for key, value in variables.items():
            if isinstance(value, str):
                codes = np.array([ord(c) for c in value], dtype=np.uint16).reshape(-1, 1)  # MATLAB 1 x L
                ds = fh.create_dataset(key, data=codes)
                ds.attrs["MATLAB_class"] = np.bytes_(b"char")
                ds.attrs["MATLAB_int_decode"] = np.int32(2)
                continue
            arr = np.asarray(value)
            if arr.ndim == 0:
                arr = arr.reshape(1, 1)
            elif arr.ndim == 1:
                arr = arr.reshape(-1, 1)
            cls = {"b": b"logical", "f": b"double" if arr.dtype == np.float64 else b"single"}.get(arr.dtype.kind)
            if cls is None:
                cls = b"double"
                arr = arr.astype(np.float64)
            data = np.ascontiguousarray(arr.astype(np.uint8) if arr.dtype == bool else arr).T
            ds = fh.create_dataset(key, data=data, compression="gzip" if data.size > 4096 else None)
            ds.attrs["MATLAB_class"] = np.bytes_(cls)
    with open(path, "r+b") as fh:
        fh.write(_MAT73_HEADER.ljust(116, b" ") + b"\x00" * 8 + b"\x00\x02" + b"IM")
    return path
