"""The `dops` command line interface (typer + rich): `dops.cli.app:main`."""
