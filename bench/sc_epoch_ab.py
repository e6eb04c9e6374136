"""Today's code vs another install, one SC epoch, timed in one run (A/B interleaved processes).

    OMP_NUM_THREADS=1 python bench/sc_epoch_ab.py --other /path/to/other/venv/bin/python [--trial] [--rounds 5]

Each round runs one worker process per side (this interpreter, then ``--other``); a worker builds the
bench's setup (``profile_sc_epoch._setup``: 835 trials x 219 bins, 65 units, fused backend), runs one
warm-up epoch and ``--epochs`` timed epochs of the same loop (:func:`run_epoch`: the bench's loop,
the losses given ``unit_index`` as the trainer passes it; Adam ``fused=True`` on our side as the
trainer's, the default one on the other unless ``--other-adam same``) and prints its times. The ratio other/ours
is taken per round (medians and min over rounds), so load drift on a shared machine hits both sides.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from benchutils import ab_rounds


def run_epoch(model, unit_index, inputs, targets, mask, opt, params, with_trial):
    import eirnn_fast.losses as L

    for i in range(0, inputs.shape[0], 64):
        yb, mb = targets[i : i + 64], mask[i : i + 64]
        rates, _ = model(inputs[i : i + 64])
        loss = L.l_neuron(rates, yb, mb, unit_index=unit_index)
        if with_trial:
            loss = loss + 0.5 * L.trial_matching_loss(
                rates, yb, mask=mb, recorded_indices=unit_index, backend=model.backend
            )
        opt.zero_grad(set_to_none=True)
        loss.backward()
        import torch

        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()


def worker(with_trial: bool, epochs: int, backend: str, fused_adam: bool) -> None:
    import torch

    import eirnn_fast

    sys.path.insert(0, str(Path(__file__).parent))
    from profile_sc_epoch import _setup

    eirnn_fast.tune_cpu_allocator()
    model, unit_index, inputs, targets, mask = _setup(backend)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, fused=fused_adam or None)
    params = list(model.parameters())
    run_epoch(model, unit_index, inputs, targets, mask, opt, params, with_trial)
    times = []
    for _ in range(epochs):
        t0 = time.perf_counter()
        run_epoch(model, unit_index, inputs, targets, mask, opt, params, with_trial)
        times.append(time.perf_counter() - t0)
    print(json.dumps({"times": times, "where": eirnn_fast.__file__}))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--other", required=False, help="python of the other install")
    p.add_argument("--trial", action="store_true")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--backend", default="fused")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--fused-adam", action="store_true", help=argparse.SUPPRESS)
    p.add_argument(
        "--other-adam",
        choices=("same", "default"),
        default="default",
        help="the other side's Adam: 'default' (the trainer's before fused=True) or the same fused one",
    )
    a = p.parse_args(argv)
    if a.worker:
        return worker(a.trial, a.epochs, a.backend, a.fused_adam)
    cmd = [__file__, "--worker", "--epochs", str(a.epochs), "--backend", a.backend] + (["--trial"] if a.trial else [])
    sides = {
        "ours": (sys.executable, ["--fused-adam"]),
        "other": (a.other, ["--fused-adam"] * (a.other_adam == "same")),
    }
    runs = ab_rounds(sides, cmd, a.rounds)
    best = {name: [min(res["times"]) for res in results] for name, results in runs.items()}
    ratios = [o / u for o, u in zip(best["other"], best["ours"])]
    print(
        json.dumps(
            {
                "loss": "l_neuron" + ("+l_trial" if a.trial else ""),
                "adam": {"ours": "fused", "other": "fused" if a.other_adam == "same" else "default"},
                "ours_s": [round(t, 4) for t in best["ours"]],
                "other_s": [round(t, 4) for t in best["other"]],
                "ratio_median": round(statistics.median(ratios), 2),
                "ratio_of_mins": round(min(best["other"]) / min(best["ours"]), 2),
            }
        )
    )


if __name__ == "__main__":
    main()
