"""Dashboards behind a misbehaving network converge on the same total, every add counted once."""

from __future__ import annotations

from collections.abc import Callable

from textual.pilot import Pilot

from tally.server.app import TallyServer
from tally.tui.app import TallyApp, make_app
from tally.tui.link import LinkOptions
from tests.support.dashboard import log_text, until
from tests.support.faultproxy import FaultProxy


async def test_dashboards_ride_out_delays_stalls_cuts_and_resets(server: TallyServer) -> None:
    """Through delay, stall, cut and reset, adds typed on both sides land once and both show the same total."""
    proxy = FaultProxy(server.port)
    url = f"ws://127.0.0.1:{await proxy.start()}"
    alice = make_app(LinkOptions(url, "alice", stall_timeout=1.0))
    bob = make_app(LinkOptions(url, "bob", stall_timeout=1.0))
    typed = 0

    async def add(pilot: Pilot[None], amount: int) -> None:
        nonlocal typed
        typed += amount
        await pilot.press(*str(amount), "enter")

    def disconnects(app: TallyApp) -> int:
        """How many times the dashboard has lost its connection (each is noted in its log)."""
        return log_text(app).count("disconnected: ")

    def both_noticed(since: tuple[int, int]) -> Callable[[], bool]:
        return lambda: disconnects(alice) > since[0] and disconnects(bob) > since[1]

    def applied(seq: int) -> Callable[[], bool]:
        return lambda: server.ledger.seq == seq

    async def converged(a: Pilot[None], what: str) -> None:
        def agreed() -> bool:
            return (
                alice.dashboard.status.state == bob.dashboard.status.state == "connected"
                and alice.dashboard.status.pending == bob.dashboard.status.pending == 0
                and alice.dashboard.total.total == bob.dashboard.total.total == server.ledger.total == typed
            )

        await until(a, agreed, timeout=20, what=f"convergence after {what}")

    faults: list[tuple[str, Callable[[], None], Callable[[], None]]] = [
        ("delay", lambda: setattr(proxy, "delay", 0.2), lambda: setattr(proxy, "delay", 0.0)),
        ("stall", proxy.stall, proxy.resume),
        ("cut", proxy.cut, lambda: None),
        ("reset", proxy.reset, lambda: None),
    ]
    try:
        async with alice.run_test() as a, bob.run_test() as b:
            await until(a, lambda: alice.dashboard.status.state == bob.dashboard.status.state == "connected")
            await add(a, 1)
            await converged(a, "start")
            for n, (name, start, stop) in enumerate(faults):
                seq, seen = server.ledger.seq, (disconnects(alice), disconnects(bob))
                start()
                await add(a, 10 + n)
                await add(b, 20 + n)
                if name == "delay":  # both adds make it through the slow path before it heals
                    await until(a, applied(seq + 2), what="the adds through the delay")
                else:  # both dashboards notice the fault before it heals
                    await until(a, both_noticed(seen), what=f"both dashboards noticing the {name}")
                stop()
                alice.link.reconnect_now()  # skip the backoff wait; the path is what is tested
                bob.link.reconnect_now()
                await converged(a, name)
        assert server.ledger.seq == 1 + 2 * len(faults)  # each add applied exactly once
    finally:
        await proxy.close()
