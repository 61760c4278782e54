"""One local cluster per module: PostgreSQL, Redis, three ``fixlens serve`` nodes and HAProxy, all real processes.

The nodes run the truth-table stand-in pipeline (``--pipeline truth-table``): these tests are about nodes,
leases and failover, and they advance sessions with user events, not with recognised frames. A test that
breaks a part (kills a node or Redis) starts it again before it ends, so the next test finds the whole cluster.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from ar_server.auth import TokenAuthority
from ar_server.cluster import wire
from ar_server.cluster.local import LocalCluster
from ar_server.store.postgres_store import PostgresStore
from tests.ar_server.conftest import StreamClient


class Target:
    """What ``StreamClient.connect`` needs: a base URL (HAProxy's or one node's)."""

    def __init__(self, url: str) -> None:
        self.url = url

    def make_url(self, path: str) -> str:
        return self.url + path


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    local = LocalCluster(nodes=3, lease_ttl_s=3.0).start()
    try:
        yield local
    finally:
        local.close()


@pytest.fixture
def authority(cluster: LocalCluster) -> TokenAuthority:
    return TokenAuthority(cluster.secret)


@pytest.fixture
async def redis_client(cluster: LocalCluster) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(cluster.redis_url)
    yield client
    await client.aclose()


@pytest.fixture
async def store(cluster: LocalCluster) -> AsyncIterator[PostgresStore]:
    opened = await PostgresStore.open(cluster.database_url, max_connections=2)
    yield opened
    await opened.close()


@pytest.fixture
async def clients() -> AsyncIterator[list[StreamClient]]:
    opened: list[StreamClient] = []
    yield opened
    await asyncio.gather(*(c.close() for c in opened), return_exceptions=True)


async def holder(redis_client: aioredis.Redis, session: str) -> str | None:
    value: Any = await redis_client.get(wire.lease_key(session))
    return None if value is None else value.decode()
