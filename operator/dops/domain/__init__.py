"""dops domain logic: pure functions over resources (dicts) and `dops.api` types. No I/O.

- `names`: DNS-1123 validation, client-side time-sortable operation names, `name` / `namespace/name` ids.
- `labels`: mirror labels (hashed where values are not valid label values).
- `resources`: the DelegatedOperation to create, rerun copies, spec and label patches (with input validation).
- `transitions`: status changes of every FiftyOne transition and their two patch forms (CAS JSON Patch, merge).
- `results`: result → status with the size caps.
- `query`: filters → selectors + client-side checks, FiftyOne search, sort and paging.
"""

from __future__ import annotations

from . import labels, names, query, resources, results, transitions

__all__ = ["labels", "names", "query", "resources", "results", "transitions"]
