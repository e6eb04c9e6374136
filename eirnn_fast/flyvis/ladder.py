"""The FlyVis recovery ladder: generate -> train (shipped defaults) -> evaluate, over rungs of extent,
noise level and data seed, resumable, summarised as mean +- std next to seed 004's Node 21.

A ladder is a YAML file (``experiments/flyvis_recovery/ladder.yaml``)::

    rungs:
      - {extent: 1, noise_model_level: 0.05, n_frames: 8000}
      - {extent: 4, noise_model_level: 0.05, n_frames: 8000, seeds: [0], config: {coeff_W_L2: 2.5e-6}}
    seeds: [0, 1, 2]
    threads: 1

Each case (rung x seed) lives in ``<out>/<rung name>/seed<S>/``: the generated data (removed after the
run unless ``keep_data``), the training run (``run/``, resumable from its checkpoint) and ``case.json``
(written last, atomically: a case with ``case.json`` is done and is not run again). Training uses the
package defaults plus the rung's ``config`` overrides; ``data_path`` is the case's data.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np

from eirnn_fast import configs
from eirnn_fast.atomic import atomic_write_json, atomic_write_text
from eirnn_fast.flyvis import metrics as M
from eirnn_fast.flyvis.simulator import GenerateConfig, generate_dataset
from eirnn_fast.flyvis.train import FlyVisTrainConfig, epochs_to_run, load_training_data, train_flyvis_gnn

#: seed 004's Node 21 (8 samples, extent 8, 64,000 frames, noise 0.05): mean, std
NODE21 = {
    "connectivity_R2": (0.955, 0.029),
    "tau_R2": (0.975, 0.028),
    "V_rest_R2": (0.499, 0.216),
    "cluster_accuracy": (0.884, 0.023),
}
METRICS = ("connectivity_R2", "tau_R2", "V_rest_R2", "cluster_accuracy", "test_pearson", "sign_match")
#: the issue's floors per seed at noise 0.05, extents 1-2, within 10 minutes wall on 2 cores
FLOORS = {"connectivity_R2": 0.9, "tau_R2": 0.9, "test_pearson": 0.8}
FLOOR_WALL_S = 600.0


@dataclass
class Rung:
    extent: int
    noise_model_level: float
    n_frames: int
    n_test_frames: int = 8000  # the generator's defaults (the README's commands)
    n_streams: int = 8
    seeds: Optional[List[int]] = None  # None: the ladder's seeds
    config: Dict[str, Any] = field(default_factory=dict)  # FlyVisTrainConfig overrides (seed names accepted)
    params: Optional[str] = None  # ground truth (None: the generator's default, flyvis:flow/0000/000)

    @property
    def name(self) -> str:
        extra = "".join(f"_{k}{v}" for k, v in sorted(self.config.items()))
        if self.params:
            extra += "_" + self.params.replace("/", "-").replace(":", "-")
        return f"e{self.extent}_noise{self.noise_model_level:g}_f{self.n_frames}{extra}"


@dataclass
class LadderFile:
    """The keys of a ladder YAML (read by :mod:`eirnn_fast.configs`: unknown keys refused with a "did
    you mean", types checked, the file named); each entry of ``rungs`` is a :class:`Rung`'s keys."""

    rungs: List[Dict[str, Any]] = field(default_factory=list)
    seeds: List[int] = field(default_factory=lambda: [0, 1, 2])
    threads: int = 1
    keep_data: bool = False


def load_ladder(path) -> Dict[str, Any]:
    """``{"rungs": [Rung, ...], "seeds", "threads", "keep_data"}`` of a ladder YAML; ``ValueError`` /
    ``TypeError`` naming the file and the key (``rungs[i].key`` inside a rung) for anything else."""
    source = str(path)
    d = configs.from_mapping(LadderFile, configs.read_config_file(path, kind="YAML"), source=source)
    top = LadderFile(**d)
    if not top.rungs:
        raise ValueError(f"{path}: a ladder needs a non-empty list 'rungs'")
    rungs = []
    for i, r in enumerate(top.rungs):
        if not isinstance(r, dict):
            raise ValueError(f"{path}: rung {i}: must be a mapping of Rung keys, got {type(r).__name__}")
        values = configs.from_mapping(Rung, r, source=source, prefix=f"rungs[{i}].", numeric_strings=True)
        missing = [k for k in ("extent", "noise_model_level", "n_frames") if k not in values]
        if missing:
            raise ValueError(f"{path}: rung {i}: missing {', '.join(missing)}")
        rungs.append(Rung(**values))
    return {"rungs": rungs, "seeds": list(top.seeds), "threads": top.threads, "keep_data": top.keep_data}


def run_case(rung: Rung, seed: int, root, keep_data: bool = False, quiet: bool = True) -> Dict[str, Any]:
    """Run (or load, when done) one case; returns its ``case.json`` dict."""
    case_dir = Path(root) / rung.name / f"seed{seed}"
    done = case_dir / "case.json"
    if done.exists():
        return json.loads(done.read_text())
    case_dir.mkdir(parents=True, exist_ok=True)
    data_dir = case_dir / "data"
    t0 = time.perf_counter()
    gen_s = 0.0
    if not (data_dir / "metadata.json").exists():
        gen = dict(
            extent=rung.extent,
            n_frames=rung.n_frames,
            n_test_frames=rung.n_test_frames,
            n_streams=rung.n_streams,
            noise_model_level=rung.noise_model_level,
            plots=False,
            progress=False,
        )
        if rung.params:
            gen["params"] = rung.params
        generate_dataset(GenerateConfig(**gen), seed, data_dir)
        gen_s = time.perf_counter() - t0
    else:  # a resumed case: the generation time its metadata recorded
        gen_s = float(json.loads((data_dir / "metadata.json").read_text()).get("timing", {}).get("total_s", 0.0))
    # mid-epoch checkpoints (bookkeeping only: a resume-free key) so a stopped ladder loses little
    cfg = FlyVisTrainConfig.from_dict(
        {"checkpoint_every": 2000, **rung.config, "data_path": str(data_dir), "quiet": quiet}
    )
    data = load_training_data(str(data_dir))
    t1 = time.perf_counter()
    model, info = train_flyvis_gnn(cfg, data, out_dir=case_dir / "run")
    # a resumed case's earlier processes count too: the run's history has every logged iteration's time
    train_s = max(time.perf_counter() - t1, _history_seconds(case_dir / "run" / "history.jsonl"))
    t2 = time.perf_counter()
    res = M.evaluate(model, data, n_test_frames=cfg.n_test_frames or None)
    eval_s = time.perf_counter() - t2
    case = {
        "rung": asdict(rung),
        "seed": seed,
        "metrics": {k: v for k, v in res.items() if isinstance(v, (int, float)) and not isinstance(v, bool)},
        "notes": res.get("notes", []),
        # the schedule's total (a resumed case ran only the rest in this process: iterations_run)
        "iterations": int(info["iterations_per_epoch"]) * epochs_to_run(cfg),
        "iterations_this_process": int(info["iterations_run"]),
        "epochs": cfg.n_epochs,
        "s_per_iteration": info["s_per_iteration"],
        "generate_s": gen_s,
        "train_s": train_s,
        "evaluate_s": eval_s,
        "wall_s": gen_s + train_s + eval_s,
        "x_range": [float(np.min(data["x"])), float(np.max(data["x"]))],
        "x_std": float(np.std(data["x"])),
        "activity_svd_rank_reference": M.activity_svd_rank_reference(data["x"]),
        "threads": _threads(),
    }
    if not keep_data:
        shutil.rmtree(data_dir, ignore_errors=True)
    atomic_write_json(done, case, indent=1, default=float)
    return case


def _history_seconds(path: Path) -> float:
    """Training time recorded in a run's history.jsonl: s/iteration x iterations since the previous
    logged iteration, over every logged (epoch, iteration) once (a restart that redid iterations
    counts them once, with the last time logged), whichever process wrote it."""
    if not path.exists():
        return 0.0
    per_epoch: Dict[int, Dict[int, float]] = {}
    for line in path.read_text().splitlines():
        d = json.loads(line)
        per_epoch.setdefault(int(d.get("epoch", 0)), {})[int(d.get("iteration", 0))] = float(d.get("s_per_iter", 0.0))
    total = 0.0
    for its in per_epoch.values():
        prev = 0
        for it in sorted(its):
            total += its[it] * (it - prev)
            prev = it
    return total


def _threads() -> int:
    import torch

    return int(torch.get_num_threads())


def _mean_std(vals: List[float]) -> str:
    v = np.asarray([x for x in vals if x is not None and np.isfinite(x)], dtype=float)
    if v.size == 0:
        return "n/a"
    return f"{v.mean():.3f} +- {v.std():.3f}" if v.size > 1 else f"{v[0]:.3f}"


def summarise(cases: List[Dict[str, Any]]) -> str:
    """Markdown: one row per rung (mean +- std over seeds), one row per case, and Node 21."""
    by: Dict[str, List[Dict[str, Any]]] = {}
    for c in cases:
        by.setdefault(Rung(**c["rung"]).name, []).append(c)
    head = "| rung | seeds | iterations | " + " | ".join(METRICS) + " | wall (min) | s/iteration |"
    lines = [head, "|" + "---|" * (len(METRICS) + 5)]
    for name, cs in by.items():
        row = [name, ",".join(str(c["seed"]) for c in cs), str(cs[0]["iterations"])]
        row += [_mean_std([c["metrics"].get(m) for c in cs]) for m in METRICS]
        row += [_mean_std([c["wall_s"] / 60 for c in cs]), _mean_std([c["s_per_iteration"] for c in cs])]
        lines.append("| " + " | ".join(row) + " |")
    lines.append(
        "| seed 004 Node 21 (extent 8, 64,000 frames, noise 0.05, 8 samples) | 8 | ~2 epochs | "
        + " | ".join(f"{NODE21[m][0]:.3f} +- {NODE21[m][1]:.3f}" if m in NODE21 else "-" for m in METRICS)
        + " | ~60 (H100) | - |"
    )
    lines += [
        "",
        "Per case (floors at noise 0.05, extents 1-2: "
        + ", ".join(f"{k} >= {v}" for k, v in FLOORS.items())
        + f", wall <= {FLOOR_WALL_S / 60:.0f} min):",
        "",
    ]
    lines.append(
        "| rung | seed | "
        + " | ".join(METRICS)
        + " | wall (min) | voltage range (std) | SVD rank 90/99 (flyvis-gnn) | floors |"
    )
    lines.append("|" + "---|" * (len(METRICS) + 6))
    for name, cs in by.items():
        for c in cs:
            m = c["metrics"]
            floor = ""
            if c["rung"]["noise_model_level"] == 0.05 and c["rung"]["extent"] <= 2:
                ok = all(m.get(k, float("nan")) >= v for k, v in FLOORS.items()) and c["wall_s"] <= FLOOR_WALL_S
                floor = "met" if ok else "missed"
            vals = " | ".join(f"{m.get(k, float('nan')):.3f}" for k in METRICS)
            lo, hi = c["x_range"]
            rk = c["activity_svd_rank_reference"]
            lines.append(
                f"| {name} | {c['seed']} | {vals} | {c['wall_s'] / 60:.1f} | {lo:.2f}..{hi:.2f} ({c['x_std']:.2f}) "
                f"| {rk['rank_90']}/{rk['rank_99']} | {floor} |"
            )
    return "\n".join(lines) + "\n"


def run_ladder(path, out_dir, progress: bool = True) -> List[Dict[str, Any]]:
    """Run every case of the ladder in ``path`` that is not done yet (serially: each case uses the
    ladder's ``threads``); writes ``<out>/summary.md`` after each case."""
    import torch

    lad = load_ladder(path)
    torch.set_num_threads(lad["threads"])
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cases = []
    for rung in lad["rungs"]:
        for seed in rung.seeds if rung.seeds is not None else lad["seeds"]:
            if progress:
                print(f"[ladder] {rung.name} seed {seed}", flush=True)
            cases.append(run_case(rung, seed, out, keep_data=lad["keep_data"]))
            (out / "summary.md").write_text(summarise(cases))
    return cases


RESULTS_BEGIN, RESULTS_END = "<!-- ladder:begin -->", "<!-- ladder:end -->"


def write_results(path, table: str) -> None:
    """Put ``table`` into the markdown file ``path`` between ``RESULTS_BEGIN`` / ``RESULTS_END``, keeping
    the text around it (the prose of ``RESULTS.md``); a file without the markers gets the marked block
    appended, a missing file is created."""
    p = Path(path)
    block = f"{RESULTS_BEGIN}\n{table.rstrip()}\n{RESULTS_END}"
    text = p.read_text() if p.exists() else ""
    i, j = text.find(RESULTS_BEGIN), text.find(RESULTS_END)
    if 0 <= i < j:
        text = text[:i] + block + text[j + len(RESULTS_END) :]
    else:
        text = (text.rstrip() + "\n\n" if text.strip() else "") + block + "\n"
    atomic_write_text(p, text)
