"""`python -m dops.worker run REF | launch ...`: the worker without the dops CLI (light start-up).

The dops CLI offers the same as `dops worker run` / `dops worker launch`; monitored executions
(`execute_operation(monitor=True)`) start their child with `python -m dops.worker run NS/NAME --claimed`.
"""

from __future__ import annotations

import argparse
import sys

from .run import run_operation


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m dops.worker", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="claim, run and record one operation (the Job container's command)")
    run.add_argument("ref", metavar="NAMESPACE/NAME", help="the DelegatedOperation (NAME uses --namespace)")
    run.add_argument("-n", "--namespace", default=None, help="namespace of NAME (default: the pod's / kubeconfig's)")
    mode = run.add_mutually_exclusive_group()
    mode.add_argument("--claimed", action="store_true", help="a supervisor already claimed the operation (running)")
    mode.add_argument("--from-queued", action="store_true", help="claim from queued instead of scheduled")
    for command in (run, launch_parser := sub.add_parser("launch", help="run queued operations of external targets")):
        command.add_argument("--kubeconfig", default=None, help="kubeconfig file (default: $KUBECONFIG or in-cluster)")
        command.add_argument("--context", default=None, help="kubeconfig context")
    launch_parser.add_argument("-t", "--target", default=None, help="DelegationTarget (mode: external) to serve")
    launch_parser.add_argument("-m", "--monitor", action="store_true", help="run each operation in a child process")
    launch_parser.add_argument("-n", "--namespace", default=None, help="namespace (default: the kubeconfig's)")
    launch_parser.add_argument("--once", action="store_true", help="run what is queued now, then exit")
    launch_parser.add_argument("--interval", type=float, default=5.0, help="seconds between polls (default 5)")
    launch_parser.add_argument("--limit", type=int, default=None, help="exit after running this many operations")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "run":
        return run_operation(
            args.ref,
            namespace=args.namespace,
            claimed=args.claimed,
            from_queued=args.from_queued,
            kubeconfig=args.kubeconfig,
            context=args.context,
        )
    from .launch import launch  # only `launch` needs it: `run` (the Job container) starts without it

    return launch(
        target=args.target,
        monitor=args.monitor,
        namespace=args.namespace,
        once=args.once,
        interval=args.interval,
        limit=args.limit,
        kubeconfig=args.kubeconfig,
        context=args.context,
    )


if __name__ == "__main__":
    sys.exit(main())
