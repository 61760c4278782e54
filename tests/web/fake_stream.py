"""A scripted ``/v1/stream`` for page tests: Playwright answers the page's WebSocket in place of a server.

Every message the page sends is decoded with the server's own decoder (``decode_client``), so a test fails
on anything the real server would refuse. Server messages are built with the server's own encoder where the
protocol has them, or packed by hand for fields a test adds.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Any

import msgpack

from ar_server.protocol import (
    ClientMessage,
    Frame,
    Hello,
    Limits,
    ServerMessage,
    Welcome,
    decode_client,
    encode_server,
)

STREAM_URL = re.compile(r"^wss?://[^/]+/v1/stream$")


@dataclass
class Connection:
    route: Any  # playwright WebSocketRoute
    received: list[ClientMessage] = field(default_factory=list)
    closed: bool = False

    @property
    def hello(self) -> Hello:
        first = self.received[0]
        assert isinstance(first, Hello), f"expected hello first, got {first!r}"
        return first

    @property
    def frames(self) -> list[Frame]:
        return [m for m in self.received if isinstance(m, Frame)]

    def send(self, message: ServerMessage | dict[str, Any]) -> None:
        if isinstance(message, dict):
            self.route.send(msgpack.packb({"v": 1, **message}, use_bin_type=True))
        else:
            self.route.send(encode_server(message, check=True))

    def welcome(self, resume: str, *, session: str = "s1", **extra: Any) -> None:
        if extra:
            body = encode_server(Welcome(session, resume, Limits(), time.time()))
            self.send({**msgpack.unpackb(body), **extra})
        else:
            self.send(Welcome(session, resume, Limits(), time.time()))

    def close(self, code: int = 1006) -> None:
        self.closed = True
        self.route.close(code=code, reason="test")


class FakeStream:
    """Install on a page with ``FakeStream(page)``; ``connections`` lists every socket the page opened."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.connections: list[Connection] = []
        page.route_web_socket(STREAM_URL, self._accept)

    def _accept(self, route: Any) -> None:
        connection = Connection(route)
        self.connections.append(connection)

        def on_message(data: str | bytes) -> None:
            assert isinstance(data, bytes), f"the page sent a text message: {data!r}"
            connection.received.append(decode_client(data, Limits()))

        route.on_message(on_message)
        route.on_close(lambda *_: setattr(connection, "closed", True))

    def wait(self, condition: Any, timeout_s: float = 10.0, what: str = "condition") -> None:
        """Let the page run until ``condition()`` holds (Playwright delivers messages while it waits)."""
        deadline = time.monotonic() + timeout_s
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")
            self.page.wait_for_timeout(30)

    def wait_connection(self, index: int, timeout_s: float = 10.0) -> Connection:
        """The ``index``-th connection, once its hello has arrived."""
        self.wait(lambda: len(self.connections) > index and self.connections[index].received, timeout_s,
                  f"hello on connection {index}")
        return self.connections[index]
