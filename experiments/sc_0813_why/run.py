"""Why 08_13 fits reach a lower share of the noise ceiling than 08_14: one-factor data ablations.

Each case is `eirnn-fast fit`'s defaults (FitConfig()) on an embedded session, with one change made to
the data before the split (so a seed's split is drawn from the changed session), in the network the
4:1 padding of the recorded neurons gives (``min_units=None``, the default before it became 80):

- ``0814``                the 08_14 session as shipped;
- ``0814_no_eye``         08_14 with the eye-position inputs (channels eye_x, eye_y) set to
                          zero, as they are in the 08_13 export;
- ``0814_14_neurons``     08_14 restricted to 14 recorded neurons (8 E + 6 I, the first of each type in
                          file order), the size of 08_13;
- ``0813``                the 08_13 session as shipped;
- ``0813_no_short``       08_13 without its 331 trials whose trial_duration_ms is < 50 ms;
- ``0813_80_units``       08_13 as shipped in a network of 08_14's size: 80 units (64 E + 16 I,
                          ``model_kwargs={"target_total": 80}``) instead of 30 (24 E + 6 I): this
                          and the next two change the network, not the data;
- ``0813_160_units``      the same with 160 units (128 E + 32 I);
- ``0814_160_units``      08_14 in 160 units (128 E + 32 I) instead of its 80;
- ``0813_80_embed56``     08_13 in 80 units with a 56-wide learnable input embedding (Phase 2c's best
                          test ratio on 08_13, embed_56_learnable) instead of the 14-wide default;
- ``0813_80_e500``        08_13 in 80 units with at most 500 epochs instead of 250 (a run that stops
                          early before 250 is the same run: the schedule does not depend on the cap).

    OMP_NUM_THREADS=1 python experiments/sc_0813_why/run.py --out runs/sc_0813_why [--seeds 42 43 44] [--cases ...]

Resumable: a case whose result.json exists is loaded, not re-run. Prints one table row per case and
seed (test PSTH r, noise ceiling, their ratio, rate error) and merges them into ``summary.json`` in
--out (rows of other cases and seeds already there are kept).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
from pathlib import Path

import numpy as np

from eirnn_fast.atomic import atomic_write_text
from eirnn_fast.data import load_embedded_session
from eirnn_fast.data.session import INPUT_CHANNELS
from eirnn_fast.train.config import FitConfig

# the module, not the function eirnn_fast.train re-exports under the same name
fit_mod = importlib.import_module("eirnn_fast.train.fit")


def _no_eye(s):
    inputs = s.inputs.copy()
    for name in ("eye_x", "eye_y"):
        inputs[:, :, INPUT_CHANNELS.index(name)] = 0.0
    return dataclasses.replace(s, inputs=inputs)


def _first_neurons(s, n_exc=8, n_inh=6):
    keep = np.concatenate([np.flatnonzero(s.neuron_type == 1)[:n_exc], np.flatnonzero(s.neuron_type == 2)[:n_inh]])
    keep.sort()
    return dataclasses.replace(
        s,
        rates=s.rates[:, :, keep],
        neuron_type=s.neuron_type[keep],
        neuron_ids=s.neuron_ids[keep],
        brain_area=s.brain_area[keep],
    )


def _no_short(s):
    keep = np.flatnonzero(s.trial_duration_ms >= 50.0)
    return s.subset(keep)


#: the network of the data ablations: the 4:1 padding of the recorded neurons alone (the defaults
#: before min_units; 08_14 pads to 80 units either way, 08_13 and 14 neurons of 08_14 to 30)
PADDED = {"min_units": None}
#: case -> (embedded session, change to the data or None, FitConfig overrides)
CASES = {
    "0814": ("08_14", None, PADDED),
    "0814_no_eye": ("08_14", _no_eye, PADDED),
    "0814_14_neurons": ("08_14", _first_neurons, PADDED),
    "0813": ("08_13", None, PADDED),
    "0813_no_short": ("08_13", _no_short, PADDED),
    "0813_80_units": ("08_13", None, {"model_kwargs": {"target_total": 80}}),
    "0813_160_units": ("08_13", None, {"model_kwargs": {"target_total": 160}}),
    "0814_160_units": ("08_14", None, {"model_kwargs": {"target_total": 160}}),
    "0813_80_embed56": ("08_13", None, {"model_kwargs": {"target_total": 80}, "input_embed_dim": 56}),
    "0813_80_e500": ("08_13", None, {"model_kwargs": {"target_total": 80}, "epochs": 500}),
}


def run_case(name: str, seed: int, out: Path) -> dict:
    session_name, change, overrides = CASES[name]
    run_dir = out / name / f"seed_{seed}"
    done = run_dir / "result.json"
    if done.exists():
        return json.loads(done.read_text())
    cfg = FitConfig(session=session_name, seed=seed, out=str(run_dir), quiet=True, **overrides)
    original = fit_mod.load_fit_data

    def load(c):
        s = load_embedded_session(session_name, c.clip_percentile)
        return s if change is None else change(s)

    fit_mod.load_fit_data = load
    try:
        return fit_mod.fit(cfg)
    finally:
        fit_mod.load_fit_data = original


def table(rows) -> str:
    """RESULTS.md's table of ``summary.json`` rows: one line per case (in CASES order), means over
    its seeds, the per-seed ratios listed."""
    lines = [
        "| case | seeds | ratio (mean +- std) | per seed | test r | ceiling | data ref / ceiling | rate error | off > 2x |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name in CASES:
        mine = sorted((r for r in rows if r["case"] == name), key=lambda r: r["seed"])
        if not mine:
            continue
        ratio = np.array([r["ratio"] for r in mine])
        std = ratio.std(ddof=1) if len(mine) > 1 else 0.0

        def mean(k):
            return float(np.mean([r[k] for r in mine]))

        data_ref = float(np.mean([r["data_ref"] / r["ceiling"] for r in mine]))
        lines.append(
            f"| {name} | {len(mine)} | {ratio.mean():.3f} +- {std:.3f} | {', '.join(f'{x:.3f}' for x in ratio)} | "
            f"{mean('test_r'):.3f} | {mean('ceiling'):.3f} | {data_ref:.2f} | {mean('rate_err'):.3f} | "
            f"{100 * mean('off_2x'):.0f} % |"
        )
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="runs/sc_0813_why")
    p.add_argument("--seeds", type=int, nargs="+", default=[42, 43, 44])
    p.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    p.add_argument("--table", action="store_true", help="print RESULTS.md's table of --out's summary.json and stop")
    a = p.parse_args()
    out = Path(a.out)
    summary = out / "summary.json"
    rows = json.loads(summary.read_text()) if summary.exists() else []
    if a.table:
        print(table(rows))
        return
    for seed in a.seeds:
        for name in a.cases:
            r = run_case(name, seed, out)
            row = {
                "case": name,
                "seed": seed,
                "n_trials": r["n_train"] + r["n_val"] + r["n_test"],
                "test_r": r["test_psth_corr"],
                "ceiling": r["noise_ceiling"],
                "ratio": r["test_psth_corr"] / r["noise_ceiling"],
                "data_ref": r["data_reference_train_vs_test"],
                "rate_err": r["test_rate_error_median"],
                "off_2x": r["test_frac_off_2x"],
            }
            rows = [x for x in rows if (x["case"], x["seed"]) != (name, seed)] + [row]
            print(
                " | ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()), flush=True
            )
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(summary, json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
