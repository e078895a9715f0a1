"""Kopf watches what its discovery found: this makes sure that includes dops' own resources.

Kopf reads the API's discovery (`/apis`, `/apis/GROUP/VERSION`) once, when its watches start, and again
only when a CustomResourceDefinition changes. A kube-apiserver that has just (re)started serves discovery
before its CRD informer has registered the custom groups (measured on the real plane: for 0.1–0.3 s `/apis`
omits dops.io and `/apis/dops.io/v1alpha1` answers 503): a scan at that moment finds no dops.io resources,
Kopf logs "Unresolved resources cannot be served" and watches neither operations nor targets. The CRDs
themselves do not change, so nothing makes Kopf look again: the operator runs, its start-up
listing admits what was queued, and it never sees another operation, while its own bookmark watch keeps
/healthz green. (The real-plane chaos run found this: an operator restarted during an API server restart.)

Two defences:

- the startup handler waits until discovery lists the operations and targets (`Runtime.start`), so the scan
  Kopf makes right after it normally finds them;
- `DiscoveryGuard` covers the rest (an API server that restarts between the two, or a scan Kopf makes
  later): once Kopf's first scan is done it compares what Kopf watches with what dops needs every few
  seconds; while something is missing, the operator's health probe fails naming it, and the guard asks
  Kopf to scan that API group again, exactly as a CRD change would.

The guard needs Kopf's `Insights` (what Kopf watches) and its rescan, neither of which Kopf exports: both are
imported from Kopf's internals and the guard is off (with a warning) when a Kopf moves them, leaving the
startup wait. `kopf run -m dops.handlers` passes no insights: there, only the startup wait applies.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

import kopf

try:  # what Kopf watches, and its per-group rescan: no public names (see the module docstring)
    from kopf._cogs.structs.references import Insights
    from kopf._core.reactor.observation import process_discovered_resource_event
except ImportError:  # pragma: no cover - a Kopf that moved them
    Insights = None  # type: ignore[assignment,misc]
    process_discovered_resource_event = None  # type: ignore[assignment]

log = logging.getLogger("dops.operator")

# How often the guard compares what Kopf watches with what dops needs (and rescans while it differs).
CHECK_SECONDS = 5.0

Resource = tuple[str, str, str]  # (group, version, plural); group "" is the core API


def resource_name(resource: Resource) -> str:
    group, _, plural = resource
    return f"{plural}.{group}" if group else plural


def new_insights() -> Any | None:
    """A Kopf `Insights` to pass to `kopf.operator(insights=...)`, or None when this Kopf keeps it elsewhere."""
    if Insights is None or process_discovered_resource_event is None:
        log.warning(
            "this Kopf keeps its discovery insights elsewhere: a missed discovery of dops' resources is "
            "not detected after start-up (the startup handler still waits for them)"
        )
        return None
    return Insights()


@dataclass
class DiscoveryGuard:
    """Watches Kopf's view of the served resources; rescans a group that lacks one of `wanted`."""

    insights: Any  # Kopf's Insights
    registry: kopf.OperatorRegistry
    settings: kopf.OperatorSettings
    wanted: tuple[Resource, ...]
    rescans: int = 0

    def missing(self) -> list[Resource]:
        """What dops needs and Kopf does not watch (nothing before Kopf's first scan is done)."""
        if not self.insights.ready_resources.is_set():
            return []
        watched = {(r.group, r.version, r.plural) for r in self.insights.watched_resources}
        return [resource for resource in self.wanted if resource not in watched]

    def problem(self) -> str | None:
        """Why the operator is not healthy because of what Kopf watches, or None."""
        missing = self.missing()
        if not missing:
            return None
        names = ", ".join(resource_name(r) for r in missing)
        return f"Kopf does not watch {names} (its API discovery did not list them; {self.rescans} rescans so far)"

    async def run(self) -> None:
        await self.insights.ready_resources.wait()
        while True:
            missing = self.missing()
            if missing:
                self.rescans += 1
                log.warning(
                    "Kopf does not watch %s: its API discovery did not list them (an API server that was "
                    "starting?); scanning again (rescan %d, then every %.0f s while they are missing)",
                    ", ".join(resource_name(r) for r in missing),
                    self.rescans,
                    CHECK_SECONDS,
                )
                for group in sorted({group for group, _, _ in missing}):
                    await self._rescan(group)
                if not self.missing():
                    log.info("Kopf watches every dops resource again after rescan %d", self.rescans)
            await asyncio.sleep(CHECK_SECONDS)

    async def _rescan(self, group: str) -> None:
        # What Kopf does when a CRD of `group` changes: read the group's discovery, revise what it watches
        # and start watches for what is new.
        event: Any = {"type": "MODIFIED", "object": {"spec": {"group": group}}}
        try:
            await process_discovered_resource_event(
                raw_event=event, settings=self.settings, registry=self.registry, insights=self.insights
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the API server still restarting: the next round tries again
            log.warning("rescanning the API group %r failed: %s", group or "core", exc)
