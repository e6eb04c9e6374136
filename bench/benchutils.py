"""Benchmark helpers (importable: pyproject puts bench/ on sys.path): one-run ratio timing and result recording ($EIRNN_BENCH_RESULTS/*.jsonl, outside the tree by default).

EIRNN_BENCH_QUICK=1 shrinks every shape for CI smoke runs (agreement checked, ratios recorded but
not asserted). Timed assertions live only here, never in python_tests/.
"""

import datetime
import json
import os
import platform
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import torch

import eirnn_fast

QUICK = os.environ.get("EIRNN_BENCH_QUICK") == "1"
# EIRNN_BENCH_THREADS=n pins torch's intra-op threads for the whole bench session (1 gives stable
# numbers on a loaded shared machine; the thread count is part of the recorded device string).
THREADS = int(os.environ.get("EIRNN_BENCH_THREADS", "0"))
# EIRNN_BENCH_ALLOCATOR=1 (default) applies eirnn_fast.tune_cpu_allocator() as the eirnn-fast command
# line does: freed multi-MB [B, T, N] buffers are reused instead of being mmap-ed and page-faulted
# again (12 ms per fresh 40 MB on the CI machine, a quarter of a fused fwd+bwd). Both sides of every
# ratio run under it; 0 measures glibc's default.
ALLOCATOR = os.environ.get("EIRNN_BENCH_ALLOCATOR", "1") == "1"
# result lines go outside the tree unless asked: EIRNN_BENCH_RESULTS=bench/results appends to the
# tracked files (what the README's tables were made from); the default is a folder in the temp dir
RESULTS = Path(os.environ.get("EIRNN_BENCH_RESULTS") or Path(tempfile.gettempdir()) / "eirnn_fast_bench_results")


def _git_sha():
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            cwd=Path(__file__).parent,
            check=True,
        ).stdout.strip()
    except Exception:  # not a checkout
        return "unknown"


def device_name(device):
    if device == "cuda":
        return torch.cuda.get_device_name()
    return f"{platform.processor() or platform.machine()} x{torch.get_num_threads()} threads"


def sync(device):
    if device == "cuda":
        torch.cuda.synchronize()


def time_call(fn, device="cpu", repeat=7, warmup=2):
    """Median and min wall time (s) of fn() over `repeat` runs after `warmup` runs."""
    for _ in range(warmup):
        fn()
    sync(device)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times), min(times)


def record(name, payload):
    """Append one result line with device, torch version and git sha."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    line = {
        "bench": name,
        "when": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "git": _git_sha(),
        "torch": torch.__version__,
        "eirnn_fast": eirnn_fast.__version__,
        "quick": QUICK,
        "allocator_tuned": eirnn_fast.runtime.allocator_tuned(),
        **payload,
    }
    with open(RESULTS / f"{name}.jsonl", "a") as fh:
        fh.write(json.dumps(line) + "\n")
    print("\n" + json.dumps(line))
    return line


def devices():
    """Devices to benchmark: the CPU always, CUDA when torch sees a GPU."""
    return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def sc_epoch_setup(session, backend: str):
    """The SC-epoch bench's model and training batch tensors (the trainer's ``build_model``, seeded;
    stratified 80/20 split, seed 42): ``(model, unit_index, inputs, targets, mask)``. Public API only,
    so ``profile_sc_epoch.py`` runs it against an installed older version too."""
    import numpy as np

    from eirnn_fast.data import train_val_split
    from eirnn_fast.train import FitConfig, build_model

    torch.manual_seed(0)
    np.random.seed(0)
    # the bench shape is the 4:1 padding (65 units for 41 E + 13 I, seed 000's network): min_units
    # None keeps it (an install older than that field has only the padding)
    sized = {"min_units": None} if "min_units" in FitConfig.__dataclass_fields__ else {}
    model, unit_index = build_model(FitConfig(backend=backend, learnable_alpha="neuron", **sized), session)
    train, _ = train_val_split(session, 0.2, seed=42)
    data = session.get_all_trials()
    idx = torch.as_tensor(train)
    return model, unit_index, data["inputs"][idx], data["targets"][idx], data["mask"][idx]


def ab_rounds(sides, args, rounds: int, alternate: bool = False):
    """A/B worker processes, timed in one run: each round runs ``python *args *extra`` once per side of
    ``sides`` (``{name: (python, extra_args)}``, in that order; with ``alternate`` the order is reversed
    every other round) from ``/tmp`` (so no checkout shadows an install) and parses the last line of
    its stdout as JSON. Returns ``{name: [parsed result per round]}``."""
    runs = {name: [] for name in sides}
    names = list(sides)
    for r in range(rounds):
        for name in names[::-1] if alternate and r % 2 else names:
            py, extra = sides[name]
            out = subprocess.run([py, *args, *extra], capture_output=True, text=True, check=True, cwd="/tmp").stdout
            runs[name].append(json.loads(out.strip().splitlines()[-1]))
    return runs
