"""Per-stage time split of one SC training epoch at the bench shape (torch.profiler).

The epoch is the one ``bench/test_bench_sc_epoch.py`` times: the trainer's model (``build_model``,
``learnable_alpha="neuron"``, counter noise on the fused kernels), 835 training trials of the
synthetic 08_15-shaped session, batches of 64, 219 bins, 52 E + 13 I units (54 recorded), Adam +
clip 1.0, L_neuron (``--trial``: + 0.5 L_trial). Forward stages are ``record_function`` regions;
backward time is split by the autograd node that ran (its op names mapped to the same stages).

    OMP_NUM_THREADS=1 python bench/profile_sc_epoch.py [--trial] [--backend fused|reference] [--epochs 3]

Run it with another environment's python (a non-editable install of an older commit) to get the
"before" split of that code: it uses only public API (``eirnn_fast.train.build_model``,
``eirnn_fast.losses``, ``eirnn_fast.models``) and, when present, ``eirnn_fast.train.fit.sc_epoch``
(the trainer's batch loop); without it, the bench's own loop.
"""

from __future__ import annotations

import argparse
import collections
import time

import torch
import torch.nn.functional as F
from benchutils import sc_epoch_setup
from torch.profiler import ProfilerActivity, profile, record_function

import eirnn_fast
import eirnn_fast.losses as L
from eirnn_fast.data import make_synthetic_variables, session_from_variables

STAGES = (
    "input projection",
    "noise",
    "scan fwd",
    "rates fwd",
    "L_neuron fwd",
    "L_trial fwd",
    "scan bwd",
    "rates bwd",
    "input projection bwd",
    "L_neuron bwd",
    "L_trial bwd",
    "clip",
    "optimizer step",
    "zero_grad",
    "batch overhead",
)

# autograd node name fragments -> backward stage (first match wins; anything else: "batch overhead")
_BWD_MAP = (
    ("EiRnnScan", "scan bwd"),
    ("Scan", "scan bwd"),
    ("Rates", "rates bwd"),
    ("Sinkhorn", "L_trial bwd"),
)


def _setup(backend: str, n_trials: int = 1043):
    v = make_synthetic_variables(seed=0, n_trials=n_trials)
    return sc_epoch_setup(session_from_variables(v, source="synthetic 08_15 shape"), backend)


def _staged_forward(model, u):
    """``model(u)`` with its stages in record_function regions (same arithmetic as EIRNN.forward)."""
    from eirnn_fast.ops import ei_rnn_rates, ei_rnn_scan, state_noise_

    with record_function("stage:input projection"):
        u = model._check_inputs(u)
        x0 = model._initial_state(None, u.shape[0])
        w_rec = model.W_rec
        alpha = model.get_alpha(u.device)
        w_in = model.W_in * (alpha.unsqueeze(-1) if alpha.dim() else alpha)
        drive = F.linear(u, w_in)
    with record_function("stage:noise"):
        scale = model.noise_scale
        if model.noise_draw == "counter" and model._fused_cpu(drive.device):
            drive = state_noise_(drive, scale * alpha.mean().sqrt(), backend="fused")
        else:
            xi = model._draw_noise(u.shape[0], u.shape[1], drive.dtype, drive.device)
            drive = torch.addcmul(drive, xi, scale * alpha.mean().sqrt())
    with record_function("stage:scan fwd"):
        states = ei_rnn_scan(drive, x0, w_rec, alpha, backend=model.backend)
    with record_function("stage:rates fwd"):
        rates = ei_rnn_rates(
            states,
            x0,
            model.rate_scale,
            model.rate_baseline,
            backend="reference" if model.backend == "reference" else "auto",
        )
    return rates


def _bwd_stage(name: str) -> str:
    for frag, stage in _BWD_MAP:
        if frag in name:
            return stage
    return ""


def profile_epoch(model, unit_index, inputs, targets, mask, with_trial: bool, epochs: int = 2):
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    params = list(model.parameters())

    def epoch():
        for i in range(0, inputs.shape[0], 64):
            with record_function("stage:batch overhead"):
                xb, yb, mb = inputs[i : i + 64], targets[i : i + 64], mask[i : i + 64]
            rates = _staged_forward(model, xb)
            with record_function("stage:L_neuron fwd"):
                loss = L.l_neuron(rates, yb, mb, unit_index=unit_index)  # selected inside (the trainer's way)
            if with_trial:
                with record_function("stage:L_trial fwd"):
                    loss = loss + 0.5 * L.trial_matching_loss(
                        rates, yb, mask=mb, recorded_indices=unit_index, backend=model.backend
                    )
            with record_function("stage:zero_grad"):
                opt.zero_grad(set_to_none=True)
            with record_function("stage:backward"):
                loss.backward()
            with record_function("stage:clip"):
                torch.nn.utils.clip_grad_norm_(params, 1.0)
            with record_function("stage:optimizer step"):
                opt.step()

    epoch()  # warm-up
    t0 = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(epochs):
            epoch()
    wall = (time.perf_counter() - t0) / epochs
    return split_from_profile(prof, epochs), wall


def split_from_profile(prof, epochs: int):
    """Stage -> seconds per epoch. Forward/optimizer stages from the ``stage:`` regions' CPU time;
    the ``stage:backward`` region split by the autograd nodes inside it (their total CPU time),
    with L_neuron's nodes = everything else that ran under it, once the mapped nodes are taken off."""
    out = collections.defaultdict(float)
    bwd_total = 0.0
    bwd_mapped = collections.defaultdict(float)
    for ev in prof.key_averages():
        name = ev.key
        t = ev.cpu_time_total / 1e6 / epochs  # inclusive, seconds per epoch
        if name.startswith("stage:"):
            stage = name[len("stage:") :]
            if stage == "backward":
                bwd_total = t
            else:
                out[stage] += t
        elif name.startswith("autograd::engine::evaluate_function: "):
            node = name.split(": ", 1)[1]
            stage = _bwd_stage(node)
            if stage:
                bwd_mapped[stage] += t
            elif node.startswith(("MmBackward", "AddmmBackward", "MulBackward", "LinearBackward", "UnsafeView")):
                bwd_mapped["_linear"] += t
    for stage in ("scan bwd", "rates bwd", "L_trial bwd"):
        out[stage] = bwd_mapped.get(stage, 0.0)
    rest = max(bwd_total - sum(out[s] for s in ("scan bwd", "rates bwd", "L_trial bwd")), 0.0)
    # what is left of the backward: the loss's and the input projection's nodes (and the engine)
    out["input projection bwd"] = min(bwd_mapped.get("_linear", 0.0), rest)
    out["L_neuron bwd"] = rest - out["input projection bwd"]
    if "L_trial fwd" not in out:
        out["L_trial fwd"] = 0.0
    return dict(out)


def print_split(title, split, wall):
    total = sum(split.values())
    print(f"\n{title}: {wall * 1e3:.1f} ms per epoch wall ({total * 1e3:.1f} ms in stages)")
    for stage in STAGES:
        t = split.get(stage, 0.0)
        print(f"  {stage:<22s} {t * 1e3:8.1f} ms  {100 * t / max(wall, 1e-12):5.1f} %")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trial", action="store_true", help="L_neuron + 0.5 L_trial (default: L_neuron)")
    p.add_argument("--backend", default="fused", choices=("fused", "reference"))
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--threads", type=int, default=0)
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    eirnn_fast.tune_cpu_allocator()
    parts = _setup(a.backend)
    split, wall = profile_epoch(*parts, a.trial, a.epochs)
    loss = "L_neuron + L_trial" if a.trial else "L_neuron"
    print_split(
        f"SC epoch ({eirnn_fast.__file__.rsplit('/', 2)[0]}), {a.backend}, {loss}, "
        f"{parts[2].shape[0]} trials x {parts[2].shape[1]} bins, {parts[0].n_total} units, {torch.get_num_threads()} thr",
        split,
        wall,
    )


if __name__ == "__main__":
    main()
