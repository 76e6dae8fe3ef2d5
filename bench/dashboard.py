"""The dashboard scenario: how many updates a second the dashboard absorbs while its input stays responsive.

The real TallyApp runs headless (Textual's run_test) against a real Tally
server; one client of the swarm (so the swarm speaks Tally) floods adds at
``rate`` a second, and a key is pressed every 100 ms. Reported: updates a
second the app caught up with (it must show the final seq), and how long each
key press took to be handled.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from typing import Any

from textual import events

from bench.swarm import Options, Swarm, percentile
from tally.tui.app import make_app
from tally.tui.link import LinkOptions


async def absorb(swarm: Swarm, options: Options) -> dict[str, Any]:
    rate, seconds = options.rate, options.seconds
    app = make_app(LinkOptions(f"ws://127.0.0.1:{swarm.port}", "bench-dashboard", stall_timeout=60))
    async with app.run_test(size=(100, 30)) as pilot:
        while app.dashboard.status.state != "connected":
            await pilot.pause(0.01)
        await swarm.connect(1)
        if not await swarm.wait(swarm.synced, 10):
            return {"valid": False, "why": "flooder did not sync"}
        flooder = swarm.clients[0]
        start_seq, start = app.dashboard.total.seq, time.monotonic()

        async def flood() -> int:
            sent = 0
            while (elapsed := time.monotonic() - start) < seconds:
                while sent < elapsed * rate:
                    sent += 1
                    flooder.send_text(swarm.dialect.add(sent))
                await asyncio.sleep(0.002)
            return sent

        flooding = asyncio.create_task(flood())
        keys = []
        field = app.dashboard.entry.input
        while not flooding.done():
            # Not pilot.press: it waits for the app to be idle, which a flood never lets it be.
            # A key event straight to the input, and the time until the input shows it.
            before, pressed = field.value, time.monotonic()
            field.post_message(events.Key("1", "1"))
            while field.value == before:  # noqa: ASYNC110 - polling is the measurement
                await asyncio.sleep(0.0005)
            keys.append((time.monotonic() - pressed) * 1000)
            await asyncio.sleep(0.1)
        sent = await flooding
        caught_up = await swarm.wait(lambda: app.dashboard.total.seq >= start_seq + sent, 30)
        elapsed = time.monotonic() - start
        typed_ok = app.dashboard.entry.input.value == "1" * len(keys)
    if not caught_up or not typed_ok:
        return {"valid": False, "why": "the dashboard fell behind or lost keys"}
    return {"valid": True, "updates_per_s": sent / elapsed, "key_p50_ms": statistics.median(keys),
            "key_p99_ms": percentile(keys, 0.99)}  # fmt: skip
