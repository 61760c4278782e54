"""The aiohttp application: ``create_app(config)`` wires REST, the stream and every shared resource.

Resources start and stop in ``cleanup_ctx``, in this order (and stop in reverse): the store, the vision
pipeline, the inference service, the session manager. The pipeline is injectable (tests, benchmarks);
without one the app builds ``vision.pipeline.Pipeline`` off the event loop, on the app's catalog and with
the decode limits of its config (so vision refuses exactly the frames the protocol does), and fails at
startup with a clear error if it cannot.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from aiohttp import web

from ar_server.app_keys import (
    AUTHORITY,
    CATALOG,
    CLOCK,
    CONFIG,
    INFERENCE,
    METRICS,
    SCENES,
    SESSIONS,
    STORE,
)
from ar_server.auth import TokenAuthority
from ar_server.cluster import add_cluster
from ar_server.config import Config
from ar_server.errors import ServerError
from ar_server.inference import BatchPipeline, InferenceService
from ar_server.limits import LIMITS, ServerLimits
from ar_server.metrics import Metrics
from ar_server.protocol import STREAM_PATH
from ar_server.rest import json_error, routes
from ar_server.scene_files import SceneFiles
from ar_server.session import FrameArchive, SessionManager
from ar_server.store import open_store
from ar_server.stream import going_away, stream_handler
from ar_server.web import add_web_routes
from product_models.catalog import Catalog, catalog_dir, default_catalog
from product_models.errors import CatalogError

log = logging.getLogger(__name__)
PIPELINE = web.AppKey("pipeline", object)
MAX_PENDING_FRAMES = 1024  # inference queue bound: at most one frame per session waits, so ~sessions
# File descriptors kept free of stream connections: the store, the log, REST clients and accept() itself. A
# server out of descriptors cannot even accept the connection that would be refused.
RESERVED_FDS = 128


def load_catalog(config: Config) -> Catalog:
    """The catalog under ``config.catalog_dir`` (the default one is loaded once per process)."""
    if config.catalog_dir.resolve() == catalog_dir().resolve():
        return default_catalog()
    return Catalog.load(config.catalog_dir)


def load_pipeline(config: Config, catalog: Catalog | None = None) -> BatchPipeline:
    """The production ``vision.pipeline.Pipeline`` on ``catalog`` (default: ``config.catalog_dir``'s) and
    the decode limits ``config`` states; raises ``ServerError("pipeline_unavailable")`` saying why (not
    importable, weights missing, device unusable, a detector product the catalog lacks)."""
    try:
        from vision.pipeline import Pipeline
    except ImportError as exc:
        raise ServerError("pipeline_unavailable", f"the vision pipeline cannot be imported ({exc}); install the "
                                                  "vision dependencies") from None
    from vision.errors import VisionError

    try:
        pipeline = Pipeline(config.weights_dir, backend=config.backend, device=config.device,
                            catalog=catalog if catalog is not None else load_catalog(config),
                            limits=config.decode_limits())
    except (VisionError, CatalogError) as exc:
        raise ServerError("pipeline_unavailable", f"the vision pipeline cannot start: {exc}") from None
    for extra in pipeline.sets[1:]:  # products added with networks of their own (weights_dir/products/<ID>/)
        log.info("model set %s recognises %s", extra.path, ", ".join(extra.product_ids))
    for product_id in pipeline.untrained:  # sessions for it run, but vision never recognises it
        log.warning("product %s: no recognition trained for it in %s; run `fixlens train product %s`",
                    product_id, config.weights_dir, product_id)
    return pipeline


def server_limits(config: Config) -> ServerLimits:
    """The app-wide limiters; ``max_connections`` is lowered to fit the process's file limit (logged)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    max_connections = config.max_connections
    if soft != resource.RLIM_INFINITY and soft - RESERVED_FDS < max_connections:
        max_connections = max(1, soft - RESERVED_FDS)
        log.warning("max_connections lowered from %d to %d: the process may open %d files (ulimit -n)",
                    config.max_connections, max_connections, soft)
    return ServerLimits(max_connections=max_connections,
                        max_unauthenticated_per_address=config.max_unauthenticated_per_address,
                        sessions_per_minute=config.sessions_per_minute, sessions_burst=config.sessions_burst)


def create_app(config: Config, *, pipeline: BatchPipeline | None = None,
               clock: Callable[[], float] = time.time) -> web.Application:
    """The server application. ``clock`` gives wall-clock seconds for the scene engine and the store."""
    catalog = load_catalog(config)
    app = web.Application(client_max_size=1024 * 1024, middlewares=[_errors_middleware])
    app[CONFIG] = config
    app[CLOCK] = clock
    app[METRICS] = Metrics()
    app[AUTHORITY] = TokenAuthority(config.secret)
    app[CATALOG] = catalog
    app[SCENES] = SceneFiles(config.scene_dir, catalog)
    app[LIMITS] = server_limits(config)
    app.cleanup_ctx.append(_store_ctx)
    app.cleanup_ctx.append(_pipeline_ctx(pipeline))
    app.cleanup_ctx.append(_inference_ctx)
    app.cleanup_ctx.append(_sessions_ctx)
    add_cluster(app)  # /readyz; with a redis_url, the cluster (after the sessions, stopped before them)
    app.router.add_get(STREAM_PATH, stream_handler)
    app.on_shutdown.append(going_away)  # close streams with 1001 before the handlers are waited for
    app.router.add_routes(routes())
    add_web_routes(app)
    return app


async def _store_ctx(app: web.Application) -> AsyncIterator[None]:
    config = app[CONFIG]
    try:
        app[STORE] = await open_store(config.database_url, config.db_path, synchronous=config.db_synchronous)
    except OSError as exc:  # a missing, read-only or full data dir: say which file, not "cannot listen"
        raise ServerError("storage_unavailable", f"cannot open the database {config.db_path} (data dir "
                                                 f"{config.data_dir}): {exc.strerror or exc}") from None
    yield
    await app[STORE].close()


def _pipeline_ctx(pipeline: BatchPipeline | None) -> Callable[[web.Application], AsyncIterator[None]]:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        built = pipeline if pipeline is not None else await asyncio.to_thread(load_pipeline, app[CONFIG],
                                                                               app[CATALOG])
        app[PIPELINE] = built
        log.info("vision pipeline: %s", type(built).__name__)
        yield
        close = getattr(built, "close", None)
        if pipeline is None and callable(close):
            await asyncio.to_thread(close)
    return ctx


async def _inference_ctx(app: web.Application) -> AsyncIterator[None]:
    config = app[CONFIG]
    service = InferenceService(app[PIPELINE], batch_size=config.batch_size,  # type: ignore[arg-type]
                               batch_wait_ms=config.batch_wait_ms, max_pending=MAX_PENDING_FRAMES,
                               metrics=app[METRICS], decode_limits=config.decode_limits(),
                               decode_workers=config.decode_workers,
                               max_decoded_bytes=config.max_decoded_mb * 1024 * 1024)
    await service.start()
    app[INFERENCE] = service
    yield
    await service.stop()


async def _sessions_ctx(app: web.Application) -> AsyncIterator[None]:
    config = app[CONFIG]
    archive = FrameArchive(config.store_frames_dir)
    manager = SessionManager(config, store=app[STORE], inference=app[INFERENCE], catalog=app[CATALOG],
                             library=app[SCENES].library, metrics=app[METRICS], archive=archive, clock=app[CLOCK])
    await manager.start()
    app[SESSIONS] = manager
    yield
    await manager.stop()
    await asyncio.to_thread(archive.close)


@web.middleware
async def _errors_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """JSON bodies for every HTTP error, and a count per route and status."""
    route = request.match_info.route.resource.canonical if request.match_info.route.resource else "unmatched"
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        if exc.content_type == "application/json":
            raise
        return json_error(exc.status, exc.reason.lower().replace(" ", "_"), exc.reason)
    except ServerError as exc:
        status = 503 if exc.code in ("overloaded", "closed") else 507 if exc.code == "storage_full" else 500
        log.exception("request %s %s failed", request.method, request.path)
        return json_error(status, exc.code, exc.message)
    except Exception as exc:  # a bug: still a JSON error, never aiohttp's plain-text 500
        status = 500
        log.exception("request %s %s failed", request.method, request.path)
        return json_error(500, "internal", f"internal server error ({type(exc).__name__})")
    finally:
        request.app[METRICS].http_requests.inc(route=route, status=str(status))
