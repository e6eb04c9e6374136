"""Today's fused recurrence kernels vs another install, timed in one run (A/B interleaved processes).

    OMP_NUM_THREADS=1 python bench/kernels_ab.py --other /path/to/other/venv/bin/python [--rounds 5]

Each round runs one worker process per side (this interpreter, then ``--other``, the order swapped
every round); a worker times, at the bench shape (835 trials x 219 bins x 54 units, float32, one
thread unless ``--threads``), the fused ``ei_rnn_scan`` forward, its forward + backward (gradients
of drive, W and alpha) and ``ei_rnn_rates`` forward + backward, ``--reps`` times each (min kept),
and also a 1024^3 float32 GEMM, the machine's reference throughput in the same process. The
ratio other/ours is taken per round (median and min over rounds), so load drift on a shared
machine hits both sides alike; the GEMM-normalised ratio (each worker's times over its own GEMM
time) also cancels load that differs between workers. Uses only public API (``eirnn_fast.ops``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

from benchutils import ab_rounds

CASES = ("gemm 1024^3", "scan fwd", "scan fwd+bwd", "rates fwd+bwd")


def worker(reps: int, threads: int) -> dict:
    import torch

    from eirnn_fast.ops import ei_rnn_rates, ei_rnn_scan

    torch.set_num_threads(threads)
    gen = torch.Generator().manual_seed(0)
    B, T, N = 835, 219, 54
    drive = (0.5 * torch.randn(B, T, N, generator=gen)).requires_grad_()
    x0 = 0.1 * torch.randn(B, N, generator=gen)
    w = (torch.randn(N, N, generator=gen) * (0.9 / N**0.5)).requires_grad_()
    alpha = torch.full((N,), 0.2).requires_grad_()
    cot = torch.randn(B, T, N, generator=gen)
    states = (2.0 * torch.randn(B, T, N, generator=gen)).requires_grad_()
    scale, base = torch.tensor(10.0, requires_grad=True), torch.tensor(0.5, requires_grad=True)
    a, b = torch.randn(1024, 1024, generator=gen), torch.randn(1024, 1024, generator=gen)

    def gemm():
        a @ b

    def fwd():
        ei_rnn_scan(drive.detach(), x0, w.detach(), alpha.detach(), backend="fused")

    def fwd_bwd():
        torch.autograd.grad(ei_rnn_scan(drive, x0, w, alpha, backend="fused"), [drive, w, alpha], cot)

    def rates():
        torch.autograd.grad(ei_rnn_rates(states, x0, scale, base, backend="fused"), [states, scale, base], cot)

    out = {}
    for name, fn in zip(CASES, (gemm, fwd, fwd_bwd, rates)):
        fn()  # warm-up
        times = []
        for _ in range(reps):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
        out[name] = min(times)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--other", help="python of the other install (required)")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        print(json.dumps(worker(args.reps, args.threads)))
        return
    if not args.other:
        p.error("--other is required")
    cmd = [__file__, "--worker", "--reps", str(args.reps), "--threads", str(args.threads)]
    runs = ab_rounds({"ours": (sys.executable, []), "other": (args.other, [])}, cmd, args.rounds, alternate=True)
    print(f"{args.rounds} rounds, {args.reps} reps, {args.threads} thread(s); min over reps, ms")
    print(
        "| case | ours (median) | other (median) | other / ours: median of rounds | min "
        "| same, each time over its worker's GEMM | ours vs GEMM |"
    )
    print("|---|---|---|---|---|---|---|")
    for case in CASES:
        o = [x[case] for x in runs["ours"]]
        t = [x[case] for x in runs["other"]]
        ratios = [b / a for a, b in zip(o, t)]
        # each worker's time over its own GEMM time: load that hits a whole worker cancels
        normed = [
            (y[case] / y["gemm 1024^3"]) / (x[case] / x["gemm 1024^3"]) for x, y in zip(runs["ours"], runs["other"])
        ]
        # share of the GEMM's FLOP rate: 2 B T N^2 per matvec pass (fwd 1, fwd+bwd 3)
        flops = {"scan fwd": 1, "scan fwd+bwd": 3}.get(case)
        share = ""
        if flops:
            g = statistics.median(x["gemm 1024^3"] for x in runs["ours"])
            share = f"{flops * 2 * 835 * 219 * 54 * 54 / statistics.median(o) / (2 * 1024**3 / g):.0%}"
        print(
            f"| {case} | {statistics.median(o) * 1e3:.1f} | {statistics.median(t) * 1e3:.1f} | "
            f"{statistics.median(ratios):.2f}x | {min(ratios):.2f}x | {statistics.median(normed):.2f}x | {share} |"
        )


if __name__ == "__main__":
    main()
