"""``python -m devstack serve|migrate|seed``: the local stack's commands."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the whole local stack until Ctrl-C")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--aws-port", type=int, default=5100)
    serve.add_argument("--no-demo", action="store_true", help="do not seed the demo data")
    serve.add_argument("--data-dir", type=Path, default=None, help="where the database lives (default .local/)")
    sub.add_parser("prepare", help="start database and AWS, migrate, seed, then exit (a smoke check)")
    args = parser.parse_args(argv)

    from devstack import stack

    if args.command == "serve":
        return stack.serve(port=args.port, aws_port=args.aws_port, seed_demo=not args.no_demo,
                           data_dir=args.data_dir)
    if args.command == "prepare":
        _, moto = stack.prepare()
        moto.stop()
        return 0
    return 2


if __name__ == "__main__":
    sys.exit(main())
