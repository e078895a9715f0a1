"""The chaos suite's worker image command: `python -m tests.chaos.worker worker run NS/NAME`.

The Job's container runs `args: [worker, run, NS/NAME]` under the image's command. The test image map
points the dops image at this module instead of `python -m dops` so that a worker process starts in
about half the CPU time (no CLI framework imported): the chaos suite starts a hundred of them on a
shared 2-core machine. Everything after the import is the real worker (`dops.worker`), unchanged.
"""

from __future__ import annotations

import sys


def main(argv: list[str]) -> int:
    if argv[:1] != ["worker"]:
        print(f"tests.chaos.worker: expected `worker run NS/NAME`, got {argv}", file=sys.stderr)
        return 2
    from dops.worker.__main__ import main as worker_main

    return worker_main(argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
