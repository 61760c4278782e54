"""Typed keys of the aiohttp application's shared resources (set up in ``ar_server.app``)."""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from ar_server.auth import TokenAuthority
from ar_server.config import Config
from ar_server.inference import InferenceService
from ar_server.metrics import Metrics
from ar_server.scene_files import SceneFiles
from ar_server.session import SessionManager
from ar_server.store import Store
from product_models.catalog import Catalog

CONFIG = web.AppKey("config", Config)
CLOCK = web.AppKey("clock", Callable[[], float])
METRICS = web.AppKey("metrics", Metrics)
AUTHORITY = web.AppKey("authority", TokenAuthority)
CATALOG = web.AppKey("catalog", Catalog)
SCENES = web.AppKey("scenes", SceneFiles)
STORE = web.AppKey("store", Store)
INFERENCE = web.AppKey("inference", InferenceService)
SESSIONS = web.AppKey("sessions", SessionManager)
