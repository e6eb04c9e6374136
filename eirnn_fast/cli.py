"""`eirnn-fast` command-line entry point."""
from __future__ import annotations

import argparse
import json
import sys
from typing import List, Optional


def _cmd_info(args: argparse.Namespace) -> int:
    import eirnn_fast

    print(json.dumps(eirnn_fast.backend_info(), indent=2))
    return 0


def _add_flyvis_commands(sub) -> None:
    """`eirnn-fast flyvis generate ...` (self-contained: parser and handler live here)."""
    p_fly = sub.add_parser("flyvis", help="FlyVis connectome data")
    fly_sub = p_fly.add_subparsers(dest="flyvis_command", required=True)
    p_gen = fly_sub.add_parser("generate", help="simulate a FlyVis dataset (ground truth regenerated per seed)")
    p_gen.add_argument("--out-dir", required=True, help="folder for chunks, params.npz, metadata.json, plots")
    p_gen.add_argument("--seed", type=int, default=0)
    p_gen.add_argument("--extent", type=int, default=8, help="hex lattice radius (8: 13,741 neurons)")
    p_gen.add_argument("--n-frames", type=int, default=64_000, help="training frames")
    p_gen.add_argument("--n-test-frames", type=int, default=8_000, help="held-out frames (other sequences)")
    p_gen.add_argument("--sequence-length", type=int, default=50)
    p_gen.add_argument("--n-streams", type=int, default=8, help="parallel streams integrated together")
    p_gen.add_argument("--dt", type=float, default=0.02)
    p_gen.add_argument("--noise-model-level", type=float, default=0.05)
    p_gen.add_argument("--chunk-frames", type=int, default=1000)
    p_gen.add_argument("--params", default=None, help="npz with tau, V_rest, W (see load_parameters)")
    p_gen.add_argument("--backend", choices=["auto", "fused", "reference"], default="auto")
    p_gen.add_argument("--threads", type=int, default=None, help="torch threads (1 is fastest on busy CPUs)")
    p_gen.add_argument("--no-plots", action="store_true")
    p_gen.add_argument("--quiet", action="store_true", help="no progress bars")

    def _cmd_generate(args: argparse.Namespace) -> int:
        import torch

        from eirnn_fast.flyvis import GenerateConfig, generate_dataset

        if args.threads:
            torch.set_num_threads(args.threads)
        cfg = GenerateConfig(
            extent=args.extent, n_frames=args.n_frames, n_test_frames=args.n_test_frames,
            sequence_length=args.sequence_length, n_streams=args.n_streams, dt=args.dt,
            noise_model_level=args.noise_model_level, chunk_frames=args.chunk_frames, params_path=args.params,
            backend=args.backend, plots=not args.no_plots, progress=not args.quiet and sys.stderr.isatty())
        meta = generate_dataset(cfg, args.seed, args.out_dir)
        print(json.dumps({"out_dir": args.out_dir, "connectome": meta["connectome"], "aggregation": meta["aggregation"],
                          "chunks": len(meta["chunks"]), "timing": meta["timing"]}, indent=1))
        return 0

    p_gen.set_defaults(func=_cmd_generate)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="eirnn-fast", description="Fused E-I RNN fitting toolkit")
    sub = parser.add_subparsers(dest="command", required=True)
    p_info = sub.add_parser("info", help="show which fused kernels this installation has")
    p_info.set_defaults(func=_cmd_info)
    _add_flyvis_commands(sub)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
