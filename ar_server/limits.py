"""Limits on what one client may cost the server: rate limiters, connection caps, the decoded-pixel budget.

Rules:
1. Every limiter here is pure bookkeeping on a time the caller passes in (seconds), except
   ``PixelBudget``, which waits; none does I/O. The values come from ``Config`` (docs/server.md, "Limits").
2. A limiter keyed by client (``KeyedBuckets``, ``ConnectionGate``, ``AcceptGate``, ``IdleConnections``)
   remembers a bounded number of keys, so the bookkeeping itself cannot be grown without bound by inventing keys.
3. A refusal says how long to wait (``retry_after``): HTTP 429 carries it as ``Retry-After``, the protocol's
   ``rate_limited`` error in its message.
4. In a cluster, a keyed limiter may be ``share``d: the decision stays local and immediate, and every token
   spent here is also spent in one bucket all nodes share (``SharedSpender``, a Redis script); the shared
   bucket's level then comes back and lowers the local one to it. A customer spreading over N nodes thus gets
   the budget of one, give or take one request per node (spent here before the shared level came back).
"""

from __future__ import annotations

import asyncio
import math
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from aiohttp import web

C = TypeVar("C")  # a connection, to IdleConnections: any hashable object
MAX_KEYS = 100_000  # clients remembered per keyed limiter (rule 2); the least recently seen go first


class TokenBucket:
    """``rate`` tokens per second up to ``burst``; ``take(now)`` spends one when there is one."""

    def __init__(self, rate: float, burst: float, now: float = -math.inf) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError(f"expected rate > 0 and burst >= 1, got rate {rate} and burst {burst}")
        self.rate = float(rate)
        self.burst = float(burst)
        self._tokens = self.burst
        self._last = now

    def _refill(self, now: float) -> None:
        if now > self._last:
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
            self._last = now

    def take(self, now: float) -> bool:
        self._refill(now)
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False

    def retry_after(self, now: float) -> float:
        """Seconds until one token is there (0 when one is there now)."""
        self._refill(now)
        return max(0.0, (1.0 - self._tokens) / self.rate)

    def full(self, now: float) -> bool:
        self._refill(now)
        return self._tokens >= self.burst

    def lower_to(self, tokens: float) -> None:
        """Rule 4: the shared bucket has ``tokens`` left; this one keeps no more than that."""
        self._tokens = min(self._tokens, max(0.0, tokens))


class SharedSpender(Protocol):
    """Spends one token of the bucket ``kind``/``key`` that all nodes share, then calls ``settle`` with the
    tokens it has left (``ar_server.cluster.node.ClusterNode``). Never raises: a lost Redis spends nothing."""

    def spend(self, kind: str, key: str, rate: float, burst: float, settle: Callable[[float], None]) -> None: ...


class KeyedBuckets:
    """One ``TokenBucket`` per key (a customer), at most ``max_keys`` of them (rule 2)."""

    def __init__(self, rate: float, burst: float, *, max_keys: int = MAX_KEYS) -> None:
        TokenBucket(rate, burst)  # validates
        self.rate, self.burst, self.max_keys = rate, burst, max_keys
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()
        self._shared: SharedSpender | None = None
        self._kind = ""

    def share(self, kind: str, spender: SharedSpender | None) -> None:
        """Rule 4 from now on (None: local only again). ``kind`` names this limiter among the shared ones."""
        self._kind, self._shared = kind, spender

    def take(self, key: str, now: float) -> float | None:
        """None when ``key`` may go on; else the seconds to wait (rule 3)."""
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = TokenBucket(self.rate, self.burst, now)
            while len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
        self._buckets.move_to_end(key)
        if not bucket.take(now):
            return max(bucket.retry_after(now), 1.0 / self.rate / 100)
        if self._shared is not None:
            self._shared.spend(self._kind, key, self.rate, self.burst, bucket.lower_to)
        return None

    def __len__(self) -> int:
        return len(self._buckets)


class AddressCounts:
    """How many of something each remote address holds; an address at zero is forgotten, so the table holds
    at most as many keys as there are things counted (rule 2)."""

    def __init__(self) -> None:
        self._counts: dict[str, int] = {}

    def get(self, address: str) -> int:
        return self._counts.get(address, 0)

    def add(self, address: str) -> None:
        self._counts[address] = self._counts.get(address, 0) + 1

    def remove(self, address: str) -> None:
        left = self._counts.get(address, 0) - 1
        if left > 0:
            self._counts[address] = left
        else:
            self._counts.pop(address, None)

    def __len__(self) -> int:
        return len(self._counts)


class CustomerLimits:
    """Rates shared by all of one customer's stream connections, keyed by the token's subject: messages the
    server refuses (``bad_messages_*``) and user events (``events_*``). Kept per connection, a customer that
    opened ten connections got ten budgets. A connection whose customer is not known yet (no session opened)
    is its own key."""

    def __init__(self, *, events_per_s: float, events_burst: int, bad_messages_per_s: float,
                 bad_messages_burst: int) -> None:
        self.events = KeyedBuckets(events_per_s, events_burst)
        self.refusals = KeyedBuckets(bad_messages_per_s, bad_messages_burst)


@dataclass(frozen=True)
class Refusal:
    code: str  # "overloaded"
    message: str


class ConnectionGate:
    """Stream connections in total and, per remote address, those that have not yet said ``hello``.

    ``admit(address)`` before the WebSocket upgrade returns None (admitted: the caller must ``release`` it
    once) or a ``Refusal``; ``greeted(address)`` when the connection's ``hello`` opened a session, which
    frees its place among the address's unauthenticated connections. Customers behind one NAT share an
    address, so only connections that have not authenticated are capped per address.
    """

    def __init__(self, max_connections: int, max_unauthenticated_per_address: int) -> None:
        self.max_connections = max_connections
        self.max_per_address = max_unauthenticated_per_address
        self.total = 0
        self._unauthenticated = AddressCounts()  # at most max_connections keys

    def admit(self, address: str) -> Refusal | None:
        if self.total >= self.max_connections:
            return Refusal("overloaded", f"the server holds its maximum of {self.max_connections} stream "
                                         "connections; try again later")
        if self._unauthenticated.get(address) >= self.max_per_address:
            return Refusal("overloaded", f"{self.max_per_address} connections from your address have not sent "
                                         "hello yet; send hello on those, or close them, before opening more")
        self.total += 1
        self._unauthenticated.add(address)
        return None

    def greeted(self, address: str) -> None:
        self._unauthenticated.remove(address)

    def release(self, address: str, *, greeted: bool) -> None:
        self.total -= 1
        if not greeted:
            self._unauthenticated.remove(address)

    def unauthenticated(self, address: str) -> int:
        return self._unauthenticated.get(address)


class AcceptGate:
    """TCP connections, per remote address, that have not yet completed their first HTTP request.

    Counted from the moment the connection is accepted, before aiohttp sees a byte: a client that opens
    connections and sends nothing (or a request line a byte at a time) holds a file descriptor each, and
    enough of them leave the process none to accept a customer with. ``admit(address)`` when the connection
    is made: True (the caller must later call ``requested`` or ``closed``, once) or False (close it now).
    ``requested(address)`` when its first request line and headers have arrived: from then on the connection
    is the stream's or REST's to limit. An honest client sends its request within milliseconds of connecting,
    so a small cap is only ever reached by a client that holds connections open on purpose.
    """

    def __init__(self, max_per_address: int) -> None:
        if max_per_address < 1:
            raise ValueError(f"expected max_per_address >= 1, got {max_per_address}")
        self.max_per_address = max_per_address
        self._waiting = AddressCounts()

    def admit(self, address: str) -> bool:
        if self._waiting.get(address) >= self.max_per_address:
            return False
        self._waiting.add(address)
        return True

    def requested(self, address: str) -> None:
        self._waiting.remove(address)

    def closed(self, address: str) -> None:
        """An admitted connection closed before its first request."""
        self._waiting.remove(address)

    def waiting(self, address: str) -> int:
        return self._waiting.get(address)

    def addresses(self) -> int:
        return len(self._waiting)


class IdleConnections(Generic[C]):
    """Per remote address, connections that finished a request and are kept open for the next one (HTTP
    keep-alive), least recently used first.

    ``idle(address, c)`` when ``c``'s request is done: None, or the address's least recently used idle
    connection when it now holds more than ``max_per_address`` (the caller closes that one; it is forgotten
    here). ``busy(address, c)`` when a request arrives on ``c``, and when ``c`` closes: a connection serving
    a request, or a stream, is never chosen. Keeping them open is what makes keep-alive fast, but each holds a
    file descriptor: a client that sends one request per connection and keeps them all would run the process
    out of descriptors, the same as one that sends no request at all.
    """

    def __init__(self, max_per_address: int) -> None:
        if max_per_address < 1:
            raise ValueError(f"expected max_per_address >= 1, got {max_per_address}")
        self.max_per_address = max_per_address
        self._idle: dict[str, OrderedDict[C, None]] = {}

    def idle(self, address: str, connection: C) -> C | None:
        kept = self._idle.setdefault(address, OrderedDict())
        kept[connection] = None
        kept.move_to_end(connection)
        if len(kept) > self.max_per_address:
            oldest, _ = kept.popitem(last=False)
            return oldest
        return None

    def busy(self, address: str, connection: C) -> None:
        kept = self._idle.get(address)
        if kept is not None:
            kept.pop(connection, None)
            if not kept:
                del self._idle[address]  # rule 2: only addresses holding idle connections are remembered

    def count(self, address: str) -> int:
        return len(self._idle.get(address, ()))

    def addresses(self) -> int:
        return len(self._idle)


class PixelBudget:
    """Bytes of decoded frames held at once across all sessions (decoded but not yet through inference).

    Frames are decoded per session before they join the shared inference queue, so without a budget
    every queued frame would hold its full image (1920 x 1920 x 3 = 11 MB). ``hold(n)`` waits, first come
    first served, until ``n`` more bytes fit (one frame alone always fits); ``free(n)`` gives them back.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.used = 0
        self._changed = asyncio.Condition()

    async def hold(self, size: int) -> None:
        async with self._changed:
            await self._changed.wait_for(lambda: self.used == 0 or self.used + size <= self.max_bytes)
            self.used += size

    async def free(self, size: int) -> None:
        async with self._changed:
            self.used -= size
            self._changed.notify_all()


class ServerLimits:
    """The app-wide limiters (``LIMITS`` on the app), built from ``Config`` at start."""

    def __init__(self, *, max_connections: int, max_unauthenticated_per_address: int,
                 sessions_per_minute: float, sessions_burst: int) -> None:
        self.connections = ConnectionGate(max_connections, max_unauthenticated_per_address)
        # Keyed by the token's subject: POST /v1/sessions and hellos that create a session share it.
        self.session_creation = KeyedBuckets(sessions_per_minute / 60.0, sessions_burst)


LIMITS = web.AppKey("limits", ServerLimits)


def retry_after_header(seconds: float) -> str:
    """``Retry-After`` in whole seconds, at least 1 (RFC 9110 allows no fractions)."""
    return str(max(1, math.ceil(seconds)))
