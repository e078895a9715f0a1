"""`dops …` and `python -m dops …`: the dops CLI (the image's entrypoint: the operator and the worker container).

The Job container's own command line, `dops worker run NS/NAME` (exactly what dops.domain.jobs builds), goes
straight to the worker without importing the CLI (Typer, Rich and every command, about a third of the worker's
import time): the worker's start-up is the delay before it claims its operation (issue 15). Every other command
line, `dops worker run` with options included, is the CLI's.
"""

from __future__ import annotations

import sys


def is_job_command_line(args: list[str]) -> bool:
    """`worker run NS/NAME` and nothing else."""
    return len(args) == 3 and args[:2] == ["worker", "run"] and "/" in args[2] and not args[2].startswith("-")


def main() -> None:
    args = sys.argv[1:]
    if is_job_command_line(args):
        from dops.worker.__main__ import main as worker_main

        sys.exit(worker_main(["run", args[2]]))
    from dops.cli.app import main as cli_main

    cli_main()


if __name__ == "__main__":
    main()
