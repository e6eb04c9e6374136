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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="eirnn-fast", description="Fused E-I RNN fitting toolkit")
    sub = parser.add_subparsers(dest="command", required=True)
    p_info = sub.add_parser("info", help="show which fused kernels this installation has")
    p_info.set_defaults(func=_cmd_info)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
