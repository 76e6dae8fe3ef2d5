"""Make docs/screenshot.svg: the real dashboard, against a real server, in a small room's busy minute.

Run from the repository: ``python docs/screenshot.py`` (about a minute). Seven
people join and add for 50 s; halfway through, the dashboard (80x24, the size most terminals open at) opens,
adds 100 and, at the end, is saved.
"""

from __future__ import annotations

import asyncio
import random
import sys
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY))

from tally.tui.app import make_app  # noqa: E402
from tally.tui.link import LinkOptions  # noqa: E402
from tests.support.dashboard import until  # noqa: E402
from tests.support.peers import Peer  # noqa: E402
from tests.support.servers import UNLIMITED_RATE, serving  # noqa: E402

PEOPLE = ("amara", "bo", "chen wei", "dmitri", "eun-ji", "françois", "gabriela")
SECONDS = 50.0


async def adding(peers: list[Peer], chance: random.Random, seconds: float) -> None:
    """Adds as people make them: mostly small, now and then a larger one, a few taken back."""
    loop = asyncio.get_running_loop()
    start, op = loop.time(), 0
    while loop.time() - start < seconds:
        op += 1
        amount = chance.choice([1, 1, 1, 2, 2, 5, 5, 10, -1, -2, -5, 25, 50])
        await chance.choice(peers).send(type="add", op=str(op), amount=amount)
        await asyncio.sleep(chance.uniform(0.05, 0.6))


async def main() -> None:
    chance = random.Random(2026)
    async with serving(limits=UNLIMITED_RATE) as server:
        peers = [await Peer.join(server.url, name, session=f"screenshot-{name.encode().hex()}") for name in PEOPLE]
        room = asyncio.create_task(adding(peers, chance, SECONDS))
        await asyncio.sleep(SECONDS / 2)  # the dashboard opens on a room already busy: its chart asks for history
        app = make_app(LinkOptions(server.url, "hana"))
        async with app.run_test(size=(80, 24)) as pilot:
            await until(pilot, lambda: app.dashboard.status.state == "connected")
            await pilot.press(*"+100", "enter")
            await room
            await until(
                pilot,
                lambda: (
                    app.dashboard.clients.settled and app.dashboard.activity.settled and app.dashboard.chart.settled
                ),
            )
            await pilot.pause(1.0)
            app.save_screenshot("screenshot.svg", str(REPOSITORY / "docs"))
        for peer in peers:
            await peer.close()


if __name__ == "__main__":
    asyncio.run(main())
