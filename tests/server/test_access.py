"""Who may connect: the shared token, TLS with verification, and browser origins."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import trustme
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tally.server.app import TallyServer
from tally.server.config import exposed
from tally.server.protocol import SUBPROTOCOL
from tally.tui.app import make_app
from tally.tui.link import LinkOptions
from tests.support.dashboard import until
from tests.support.servers import serving

TOKEN = "correct horse battery staple"


@pytest.fixture
async def token_server() -> AsyncIterator[TallyServer]:
    """A server that wants TOKEN from every client."""
    async with serving(token=TOKEN) as server:
        yield server


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}, {"Authorization": f"Basic {TOKEN}"},
     {"Authorization": f"Bearer {TOKEN}x"}, {"Authorization": "Bearer"}],
    ids=["none", "wrong", "no-scheme", "basic", "longer", "empty"],
)  # fmt: skip
async def test_without_the_token_the_handshake_is_refused_with_401(
    token_server: TallyServer, headers: dict[str, str]
) -> None:
    """Missing or wrong tokens never reach the WebSocket: HTTP 401, with WWW-Authenticate."""
    with pytest.raises(InvalidStatus) as refused:
        await connect(token_server.url, subprotocols=[SUBPROTOCOL], additional_headers=headers)  # type: ignore[list-item]
    assert refused.value.response.status_code == 401
    assert refused.value.response.headers["WWW-Authenticate"].startswith("Bearer")
    assert token_server.roster.clients() == ()


async def test_with_the_token_the_dashboard_connects(token_server: TallyServer) -> None:
    """The dashboard sends --token as a bearer token, and never shows it."""
    app = make_app(LinkOptions(token_server.url, "alice", token=TOKEN))
    async with app.run_test() as pilot:
        await until(pilot, lambda: app.dashboard.status.state == "connected")
        await pilot.press("3", "enter")
        await until(pilot, lambda: app.dashboard.total.total == 3)
        screen = (
            str(app.dashboard.status.render())
            + app.sub_title
            + "\n".join(line.text for line in app.dashboard.activity.lines)
        )
        assert "horse" not in screen


async def test_a_dashboard_without_the_token_says_so_and_waits(token_server: TallyServer) -> None:
    """A 401 is not retried in a loop: the status says a token is needed."""
    app = make_app(LinkOptions(token_server.url, "alice"))
    async with app.run_test() as pilot:
        await until(pilot, lambda: app.dashboard.status.state == "offline")
        assert "valid token" in str(app.dashboard.status.render())


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def tls_files(ca: trustme.CA, tmp_path: Path) -> Iterator[tuple[str, str, str]]:
    """A certificate for 127.0.0.1 signed by a private CA: (cert, key, ca) PEM paths."""
    cert = ca.issue_cert("127.0.0.1", "localhost")
    paths = tmp_path / "cert.pem", tmp_path / "key.pem", tmp_path / "ca.pem"
    cert.cert_chain_pems[0].write_to_path(str(paths[0]))
    cert.private_key_pem.write_to_path(str(paths[1]))
    ca.cert_pem.write_to_path(str(paths[2]))
    yield str(paths[0]), str(paths[1]), str(paths[2])


async def test_wss_with_a_private_ca_is_verified(tls_files: tuple[str, str, str]) -> None:
    """The dashboard trusts a private CA given with --cafile, and connects over wss://."""
    cert, key, cafile = tls_files
    async with serving(tls_cert=cert, tls_key=key) as server:
        assert server.url.startswith("wss://")
        app = make_app(LinkOptions(server.url, "alice", tls=ssl.create_default_context(cafile=cafile)))
        async with app.run_test() as pilot:
            await until(pilot, lambda: app.dashboard.status.state == "connected")
            await pilot.press("4", "enter")
            await until(pilot, lambda: server.ledger.total == 4)


async def test_wss_without_trusting_the_ca_is_refused(tls_files: tuple[str, str, str]) -> None:
    """Without --cafile the dashboard does not trust a private certificate, and never connects."""
    cert, key, _ = tls_files
    async with serving(tls_cert=cert, tls_key=key) as server:
        with pytest.raises(ssl.SSLCertVerificationError):
            await connect(server.url, subprotocols=[SUBPROTOCOL])  # type: ignore[list-item]
        app = make_app(LinkOptions(server.url, "alice"))
        async with app.run_test() as pilot:
            await until(pilot, lambda: app.dashboard.status.state == "offline")
            assert "certificate is not trusted" in str(app.dashboard.status.render()).lower()
            assert server.roster.clients() == ()


@pytest.mark.parametrize(
    ("allow", "origin", "accepted"),
    [
        ((), None, True),
        ((), "https://evil.example", False),
        (("https://tally.example",), "https://tally.example", True),
        (("https://tally.example",), "https://evil.example", False),
        (("https://tally.example",), None, True),
        (("*",), "https://anything.example", True),
    ],
)
async def test_browser_origins_are_refused_unless_allowed(
    allow: tuple[str, ...], origin: str | None, accepted: bool
) -> None:
    """A web page elsewhere cannot drive a local server; clients without Origin always can."""
    headers = {} if origin is None else {"Origin": origin}
    async with serving(allow_origins=allow) as server:
        if accepted:
            async with connect(server.url, subprotocols=[SUBPROTOCOL], additional_headers=headers) as ok:  # type: ignore[list-item]
                await ok.send('{"type":"hello","name":"web","secret":"a-secret-of-16-chars"}')
                assert '"welcome"' in str(await ok.recv())
        else:
            with pytest.raises(InvalidStatus) as refused:
                await connect(server.url, subprotocols=[SUBPROTOCOL], additional_headers=headers)  # type: ignore[list-item]
            assert refused.value.response.status_code == 403


@pytest.mark.parametrize(
    ("host", "warn"),
    [("127.0.0.1", False), ("127.0.0.2", False), ("::1", False), ("localhost", False),
     ("0.0.0.0", True), ("::", True), ("192.168.1.5", True), ("tally.example", True)],
)  # fmt: skip
def test_listening_beyond_loopback_is_recognised(host: str, warn: bool) -> None:
    """The loud warning fires for any address other machines could reach."""
    assert exposed(host) is warn


@pytest.mark.parametrize(
    ("token", "tls", "said"),
    [
        (None, False, "WITHOUT A TOKEN"),
        ("secret", False, "WITH A TOKEN BUT WITHOUT TLS"),
        ("secret", True, None),
    ],
)
async def test_serving_beyond_loopback_warns_of_what_is_exposed(
    token: str | None, tls: bool, said: str | None, tls_files: tuple[str, str, str], caplog: pytest.LogCaptureFixture
) -> None:
    """Anyone can add without a token; a token without TLS crosses the network in clear: both are said loudly."""
    cert, key, _ = tls_files
    options = {"tls_cert": cert, "tls_key": key} if tls else {}
    caplog.set_level("WARNING", logger="tally.server")
    async with serving(host="0.0.0.0", token=token, **options):  # type: ignore[arg-type]
        pass
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING" and "LISTENING ON" in r.getMessage()]
    if said is None:
        assert warnings == []
    else:
        assert len(warnings) == 1 and said in warnings[0]
