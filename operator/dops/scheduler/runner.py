"""The scheduler task: one asyncio loop that reserves admissions whenever something may have freed a slot."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from .queue import AdmissionQueue, Key

log = logging.getLogger(__name__)


class Scheduler:
    """`kick()` after any change that may allow an admission; `run()` picks and hands keys to `admit`."""

    def __init__(self, queue: AdmissionQueue, admit: Callable[[Key], None], batch: int = 200) -> None:
        self.queue = queue
        self.admit = admit
        self.batch = batch
        self._kicked = asyncio.Event()

    def kick(self) -> None:
        self._kicked.set()

    async def run(self, ready: asyncio.Event) -> None:
        await ready.wait()
        while True:
            await self._kicked.wait()
            self._kicked.clear()
            picked = self.queue.pick(self.batch)
            for key in picked:
                self.admit(key)
            if len(picked) >= self.batch:
                self._kicked.set()  # more may fit: go again after the loop had a turn
                await asyncio.sleep(0)
