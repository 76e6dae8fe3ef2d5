"""The operator's endpoints (/healthz, /readyz, /metrics, /) under hostile use: paced, throttled and logged per address
like the WebSocket path, and answered whatever query a prober adds."""

from __future__ import annotations

import dataclasses

import pytest

from tally.server.limits import Limits
from tests.support import http
from tests.support.http import Answer
from tests.support.servers import UNLIMITED_RATE, serving

TOKEN = "correct horse battery staple"


async def get(port: int, target: str, *, source: str = "127.0.0.1", token: str | None = None) -> Answer:
    """One HTTP GET of ``target`` (sent as written, query and fragment included) from the address ``source``."""
    return await http.get(
        port, target, source=source, headers=None if token is None else {"Authorization": f"Bearer {token}"}
    )


async def test_wrong_metrics_tokens_are_throttled_per_address(caplog: pytest.LogCaptureFixture) -> None:
    """Past auth_failures wrong tokens on /metrics an address gets 429 with Retry-After, its tokens no longer
    compared (the right one included), each compared failure logged as the handshake's are; others still scrape."""
    caplog.set_level("WARNING", logger="tally.server")
    limits = dataclasses.replace(UNLIMITED_RATE, auth_failures=5)
    async with serving(limits=limits, token=TOKEN) as server:
        answers = [await get(server.port, "/metrics", source="127.0.0.2", token="wrong") for _ in range(200)]
        assert [a.status for a in answers] == [401] * 5 + [429] * 195
        assert all(a.headers["Retry-After"] == "10" for a in answers[5:])
        assert (await get(server.port, "/metrics", source="127.0.0.2", token=TOKEN)).status == 429
        scrape = await get(server.port, "/metrics", token=TOKEN)  # Prometheus, from another address
        assert scrape.status == 200 and 'tally_handshakes_refused_total{reason="auth_throttled"} 196.0' in scrape.body
    refused = [r for r in caplog.records if "wrong or missing token" in r.getMessage()]
    assert len(refused) == 5 and all("127.0.0.2" in r.getMessage() for r in refused)


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics", "/"])
async def test_a_flood_of_health_checks_is_paced_like_connections(path: str) -> None:
    """Health checks and the front page count in the address's connect rate: past connect_burst, 429 with
    Retry-After, while another address is answered."""
    limits = dataclasses.replace(Limits(), connect_rate=0.001, connect_burst=5)
    async with serving(limits=limits) as server:
        answers = [await get(server.port, path, source="127.0.0.2") for _ in range(12)]
        assert [a.status for a in answers] == [200] * 5 + [429] * 7
        assert answers[-1].headers["Retry-After"] == "1" and "slow down" in answers[-1].body
        assert (await get(server.port, path)).status == 200


@pytest.mark.parametrize(
    ("target", "text"),
    [("/healthz?x", "ok\n"), ("/healthz#x", "ok\n"), ("/readyz?verbose", "ready\n"), ("/readyz?", "ready\n"),
     ("/metrics?x=1", "tally_build_info"), ("/?from=browser", "This is a Tally server")],
)  # fmt: skip
async def test_health_paths_are_answered_with_any_query_string(target: str, text: str) -> None:
    """A query or fragment after a health path is still that path, never taken for a WebSocket handshake (401)."""
    async with serving(token=TOKEN) as server:
        answer = await get(server.port, target, token=TOKEN if target.startswith("/metrics") else None)
        assert answer.status == 200 and text in answer.body, answer
