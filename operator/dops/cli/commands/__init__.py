"""One module per `dops` command; each defines `register(app)` (see `dops.cli.app.COMMAND_MODULES`)."""
