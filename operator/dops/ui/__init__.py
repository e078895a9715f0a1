"""`dops ui`: a local live dashboard of delegated operations (a web page served on 127.0.0.1).

`dops.ui.server.UiServer` is the app; `dops.ui.table` holds its pure table rules; `dops.ui.cache` the
one shared watch; `dops.ui.actions` the actions (the CLI's rules through the same service calls).
Only `dops.cli` imports this package.
"""
