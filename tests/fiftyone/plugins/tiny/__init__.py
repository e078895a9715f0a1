"""A tiny FiftyOne plugin for dops' tests: `add` reports progress and returns a sum; `explode` raises.

Loaded by FiftyOne's plugin registry (FIFTYONE_PLUGINS_DIR=tests/fiftyone/plugins), never imported by pytest.
"""

import fiftyone.operators as foo
import fiftyone.operators.types as types


class Add(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(name="add", label="Add two numbers", allow_delegated_execution=True)

    def resolve_input(self, ctx):
        inputs = types.Object()
        inputs.int("a", required=True)
        inputs.int("b", required=True)
        return types.Property(inputs)

    def execute(self, ctx):
        ctx.set_progress(progress=0.5, label="adding")
        return {"sum": ctx.params["a"] + ctx.params["b"], "delegated": bool(ctx.delegated)}


class Explode(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(name="explode", label="Always fails", allow_delegated_execution=True)

    def execute(self, ctx):
        raise RuntimeError("the tiny plugin exploded on purpose")


def register(p):
    p.register(Add)
    p.register(Explode)
