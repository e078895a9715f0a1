"""The chaos suite (issue 11): hundreds of operations under operator kills, pod and Job deletions, API
errors, watch expiry, cancels and re-queues, then figures and assertions (see `tests/chaos/run.py`).

Importing this package has no side effects: nothing starts until `run.py`'s `ChaosRun.run()` is called
(by `test_chaos.py`, `make chaos` or `python -m tests.chaos.run`).
"""
