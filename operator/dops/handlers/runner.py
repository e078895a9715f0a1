"""`run_operator(...)`: run the dops operator (Kopf) in the calling thread until `stop_flag` is set."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import threading
from collections.abc import Sequence

import kopf

from ..domain.settings import OperatorSettings
from . import operator as handlers
from .discovery import new_insights


def run_operator(
    *,
    namespaces: Sequence[str] | None = None,
    all_namespaces: bool = False,
    settings: OperatorSettings | None = None,
    standalone: bool = True,
    verbose: bool = False,
    stop_flag: threading.Event | asyncio.Event | None = None,
    kubeconfig: str | os.PathLike[str] | None = None,
    ready_flag: threading.Event | asyncio.Event | None = None,
    configure_logging: bool = True,
) -> None:
    """Run the operator (blocking). Namespaces: `namespaces`, else all with `all_namespaces`, else
    `settings.watch_namespaces`, else cluster-wide. Liveness at http://ADDR:health_port/healthz unless 0.

    `kubeconfig` (default: $KUBECONFIG / in-cluster) and `ready_flag` (set once the operator runs) are
    for embedding (tests, `dops dev`).
    """
    settings = settings or OperatorSettings.from_env(os.environ)
    chosen = tuple(namespaces or ()) if not all_namespaces else ()
    if not chosen and not all_namespaces:
        chosen = settings.watch_namespaces
    if configure_logging:
        kopf.configure(verbose=verbose)
        logging.getLogger("dops").setLevel(logging.DEBUG if verbose else logging.INFO)
    if not verbose:
        # Kopf logs "Handler ... succeeded" for every watch event at INFO: thousands of lines a minute.
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    tune_garbage_collector()
    insights = new_insights()  # what Kopf watches, for the discovery guard (None: a Kopf that moved it)
    memo = kopf.Memo(dops_settings=settings, dops_kubeconfig=kubeconfig, dops_namespaces=chosen, dops_insights=insights)
    liveness = f"http://{settings.bind_address}:{settings.health_port}/healthz" if settings.health_port else None
    asyncio.run(
        kopf.operator(
            registry=handlers.REGISTRY,
            clusterwide=not chosen,
            namespaces=list(chosen),
            standalone=standalone,
            liveness_endpoint=liveness,
            stop_flag=stop_flag,
            ready_flag=ready_flag,
            memo=memo,
            insights=insights,
            memories=handlers.kopf_memories(),  # no Kopf memory kept per finished operation
        )
    )


# CPython's default collector thresholds, and the operator's. Measured with scripts/bench_operator.py (1,000
# operations, the collector's own time from gc.callbacks): the defaults spent 21 % of the operator's CPU in the
# cyclic collector, mostly in full collections (20 in the run, 156 ms each: every watch event's short-lived
# objects that survive two young collections count towards the next full one); (5000, 20, 100) spent 11 %
# (273 young collections, 13 middle, 1 full) with the same peak RSS (about 200 MiB).
DEFAULT_GC_THRESHOLDS = (700, 10, 10)
OPERATOR_GC_THRESHOLDS = (5000, 20, 100)


def tune_garbage_collector() -> None:
    """The operator's collector thresholds, unless the process has chosen its own (an embedder's are kept).

    Process-wide, and kept after the operator returns: reference counting frees nearly everything the operator
    allocates; the thresholds only say how often the cycle collector looks for the rest."""
    if gc.get_threshold() == DEFAULT_GC_THRESHOLDS:
        gc.set_threshold(*OPERATOR_GC_THRESHOLDS)
