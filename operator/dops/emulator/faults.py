"""Fault injection, so reliability tests can make the API misbehave on purpose.

Rules match requests by method and a path regex and answer with an error Status (5xx, 429, …)
a bounded number of times. Watch faults (forced 410 Expired, dropped streams) act on the store's
open watchers directly; a watch lag holds back the events of one resource's watches (a watch
cache or a connection that runs behind the others: a client's Job watch ahead of its pod watch).
Reachable from Python (`EmbeddedServer.faults`) and over HTTP under `/__emulator/faults` (and
`/__emulator/watches/...`) so out-of-process tests (kubectl, the operator in a subprocess) can use them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from . import errors


@dataclass
class FaultRule:
    code: int
    method: str = "*"
    path: str = ".*"
    times: int = 1  # < 0: forever
    message: str = ""
    skip: int = 0  # the first `skip` matching requests pass (a fault that starts with the second scan, say)
    matched: int = 0
    _pattern: re.Pattern[str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._pattern = re.compile(self.path)

    def matches(self, method: str, path: str) -> bool:
        return (self.method in ("*", method)) and self._pattern.search(path) is not None

    def error(self) -> errors.APIError:
        reason = {
            429: "TooManyRequests",
            500: "InternalError",
            502: "BadGateway",
            503: "ServiceUnavailable",
            504: "Timeout",
            409: "Conflict",
            410: "Expired",
            403: "Forbidden",
        }.get(self.code, "InternalError")
        message = self.message or f"injected fault ({self.code} {reason})"
        details: dict[str, Any] | None = {"retryAfterSeconds": 1} if self.code in (429, 503) else None
        return errors.APIError(self.code, reason, message, details)

    def describe(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "method": self.method,
            "path": self.path,
            "times": self.times,
            "skip": self.skip,
            "matched": self.matched,
            "message": self.message,
        }


class Faults:
    """The active fault rules; the first matching rule with uses left answers the request."""

    def __init__(self) -> None:
        self.rules: list[FaultRule] = []
        self.watch_lags: dict[str, float] = {}  # resource plural → seconds its watch events are held back

    def lag_watches(self, resource: str, seconds: float) -> None:
        """Hold back the events of `resource`'s watches (plural, e.g. "pods"): what arrives goes out, in order,
        `seconds` after the first of it arrived; 0 ends the lag."""
        if not resource:
            raise ValueError("a watch lag needs the resource's plural name, e.g. pods")
        if not 0 <= seconds <= 60:
            raise ValueError(f"a watch lag must be between 0 and 60 seconds, got {seconds}")
        if seconds:
            self.watch_lags[resource] = float(seconds)
        else:
            self.watch_lags.pop(resource, None)

    def watch_lag(self, resource: str) -> float:
        return self.watch_lags.get(resource, 0.0)

    def add(
        self, code: int, method: str = "*", path: str = ".*", times: int = 1, message: str = "", skip: int = 0
    ) -> FaultRule:
        if not 400 <= code <= 599:
            raise ValueError(f"fault code must be an HTTP error status (400-599), got {code}")
        if skip < 0:
            raise ValueError(f"skip must be 0 or more, got {skip}")
        rule = FaultRule(code=code, method=method.upper(), path=path, times=times, message=message, skip=skip)
        self.rules.append(rule)
        return rule

    def clear(self) -> None:
        self.rules.clear()
        self.watch_lags.clear()

    def check(self, method: str, path: str) -> errors.APIError | None:
        for rule in self.rules:
            if rule.times == 0:
                continue
            if rule.matches(method, path):
                if rule.skip > 0:
                    rule.skip -= 1
                    continue
                rule.matched += 1
                if rule.times > 0:
                    rule.times -= 1
                return rule.error()
        return None
