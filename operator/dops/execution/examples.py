"""dops' built-in example operators (entry-point group `dops.operators`, see pyproject.toml).

- `@dops/examples/echo` (any params): returns its params.
- `@dops/examples/count` (`n`: integer 0..1,000,000, default 10; `delay`: seconds ≥ 0, default 0.1): counts to
  n, reporting progress each step; returns `{"count": n}`.
- `@dops/examples/sleep` (`seconds`: 0..86,400, default 1): sleeps (asynchronously); returns `{"slept": seconds}`.
- `@dops/examples/fail` (`message`: string, default "this operation fails on purpose"): raises
  `ExampleFailure(message)`.

They cover the four operator kinds between them (plain function, coroutine) and the failure path;
examples/*.yaml run them.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from .context import ExecutionContext
from .operators import Param, operator


class ExampleFailure(RuntimeError):
    """Raised by `@dops/examples/fail`."""


@operator(params=None, description="Return the operation's params as its result.")
def echo(ctx: ExecutionContext) -> dict[str, Any]:
    ctx.log(f"echo: {sorted(ctx.params)}")
    return dict(ctx.params)


@operator(
    params=[
        Param("n", "integer", default=10, minimum=0, maximum=1_000_000, description="how far to count"),
        Param("delay", "number", default=0.1, minimum=0, maximum=3600, description="seconds per step"),
    ],
    description="Count to n, sleeping `delay` seconds per step and reporting progress each step.",
)
def count(ctx: ExecutionContext) -> dict[str, Any]:
    n = int(ctx.params["n"])
    delay = float(ctx.params["delay"])
    for i in range(1, n + 1):
        if delay:
            time.sleep(delay)
        ctx.set_progress(i / n, f"{i}/{n}")
        ctx.log(f"count: {i}/{n}")
    return {"count": n}


@operator(
    params=[Param("seconds", "number", default=1, minimum=0, maximum=86_400, description="how long to sleep")],
    description="Sleep for `seconds` seconds.",
)
async def sleep(ctx: ExecutionContext) -> dict[str, Any]:
    seconds = float(ctx.params["seconds"])
    ctx.log(f"sleep: {seconds}s")
    await asyncio.sleep(seconds)
    return {"slept": ctx.params["seconds"]}


@operator(
    params=[Param("message", "string", default="this operation fails on purpose", max_length=4096)],
    description="Raise an exception with `message`.",
)
def fail(ctx: ExecutionContext) -> None:
    raise ExampleFailure(ctx.params["message"])
