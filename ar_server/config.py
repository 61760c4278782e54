"""Server configuration: one frozen dataclass, built once from CLI flags > environment (``FIXLENS_*``) > defaults.

Every value is validated where it is read, and an error names the field, the offending value and its source
("flag --port", "environment variable FIXLENS_PORT" or "default"). The token secret is the one value with a
mode-dependent default: in ``dev`` mode an embedded, public development secret (``DEV_SECRET``) is used when
none is configured; in ``production`` mode a missing, short or development secret stops the build. The
secret has no CLI flag on purpose: a flag shows in ``ps`` output to every user of the machine.
"""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from dataclasses import field as _field
from pathlib import Path
from typing import Any, Literal

from ar_server.errors import ConfigError
from ar_server.protocol.messages import FRAME_OVERHEAD_BYTES, Limits
from vision.jpeg_header import DecodeLimits
from vision.model_files import IN_SOURCE_CHECKOUT, default_data_dir

ENV_PREFIX = "FIXLENS_"
# Public and documented (docs/PROTOCOL.md, "Authentication"): fine on a laptop, refused in production.
DEV_SECRET = "fixlens-dev-secret-not-for-production"
MIN_PRODUCTION_SECRET_CHARS = 32
_REPO = Path(__file__).resolve().parent.parent
# Writable state (the database, authored scenes) lives in the data dir. A source checkout keeps its old
# defaults: ./fixlens-data, and the scene library edited in the tree. An installed package never writes inside
# itself: its data dir is per user, and its scene folder is <data_dir>/scenes, seeded from the shipped library
# on first use (ar_server.scene_files).
_DEFAULT_DATA_DIR = Path("fixlens-data") if IN_SOURCE_CHECKOUT else default_data_dir()

Mode = Literal["dev", "production"]
Backend = Literal["auto", "onnx", "torch"]


@dataclass(frozen=True)
class Config:
    host: str = "127.0.0.1"
    port: int = 8080  # 0 picks a free port (tests)
    mode: Mode = "dev"
    secret: str = _field(default=DEV_SECRET, repr=False)  # HMAC key for tokens
    data_dir: Path = _DEFAULT_DATA_DIR
    db_path: Path = _DEFAULT_DATA_DIR / "fixlens.db"  # SQLite file; defaults to <data_dir>/fixlens.db
    db_synchronous: Literal["normal", "full"] = "normal"  # SQLite synchronous pragma (WAL mode)
    # postgresql://user:password@host:port/db, shared by several nodes; None: the SQLite file db_path.
    database_url: str | None = _field(default=None, repr=False)
    scene_dir: Path = _REPO / "scenes" / "library" if IN_SOURCE_CHECKOUT else _DEFAULT_DATA_DIR / "scenes"
    catalog_dir: Path = _REPO / "product_models" / "catalog"
    max_frame_bytes: int = 2 * 1024 * 1024  # one JPEG; a 640x480 frame is 50-200 kB
    max_width: int = 1920  # pixels
    max_height: int = 1920  # pixels
    max_fps: float = 30.0  # processed frames per second per session
    batch_size: int = 8  # frames per inference batch
    batch_wait_ms: float = 5.0  # how long a partial batch waits for more frames
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    weights_dir: Path = _REPO / "vision" / "weights"  # detector, keypoint, part-state (and occlusion) networks
    # Detector backend: auto = torch on CUDA when available, else onnx. A process that also renders with
    # Panda3D's EGL display must use onnx: importing torch there crashes it (auto probes torch for CUDA).
    backend: Backend = "auto"
    token_ttl_s: int = 3600  # lifetime of tokens minted by `fixlens token` and the server
    store_frames_dir: Path | None = None  # frames of consenting sessions go here; None stores none
    session_idle_timeout_s: float = 300.0  # a session with no message for this long ends
    # What one client may cost (docs/server.md, "Limits"; ar_server/limits.py): each default's reason is there.
    hello_timeout_s: float = 10.0  # a connection that has not sent hello this long after the upgrade is closed
    max_connections: int = 1000  # stream connections in total; also kept under the process's file limit
    max_unauthenticated_per_address: int = 16  # connections from one address that have not sent hello yet
    first_request_timeout_s: float = 10.0  # a TCP connection without a whole request line + headers is closed
    max_pre_request_per_address: int = 32  # TCP connections from one address before their first HTTP request
    max_keepalive_per_address: int = 64  # idle keep-alive connections kept per address; past it the oldest closes
    max_outbound_messages: int = 64  # messages queued to one client that it has not read yet
    max_outbound_bytes: int = 2 * 1024 * 1024  # their encoded bytes
    bad_messages_per_s: float = 2.0  # refused messages per customer, on average, before a connection is closed
    bad_messages_burst: int = 50  # ... and in a burst
    events_per_s: float = 5.0  # user events (done, back, help, choose) per customer
    events_burst: int = 20
    escalations_per_minute: float = 2.0  # escalations one session may open
    escalations_burst: int = 3
    max_open_escalations: int = 5  # open escalations per session; past it a help press records nothing
    sessions_per_minute: float = 30.0  # sessions a customer (token subject) may create
    sessions_burst: int = 10
    decode_workers: int = 2  # threads decoding frames before inference
    max_decoded_mb: int = 256  # decoded frames held at once before inference, MiB
    # Support links and agents (docs/server.md, "Agents").
    link_ttl_s: int = 600  # a support link's single-use token is exchangeable this long
    agent_frame_fps: float = 5.0  # frames per second sent to each watching agent, at most
    agent_frame_width: int = 320  # pixels: frames sent to agents are downscaled to this width
    # Several nodes behind a load balancer (docs/deploy.md, "Several nodes"; ar_server/cluster/).
    redis_url: str | None = _field(default=None, repr=False)  # redis://[:password@]host:port/db; None: one node
    node_id: str | None = None  # this node's name in the session directory; None: <hostname>-<pid>
    lease_ttl_s: float = 5.0  # a session lease of a node that stopped refreshing it expires after this long
    # Where each field's value came from, for messages: "flag --port", "environment variable FIXLENS_PORT", ...
    sources: Mapping[str, str] = _field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_sources(cls, argv_overrides: Mapping[str, Any] | None = None,
                     environ: Mapping[str, str] | None = None) -> Config:
        """Build and validate a config. ``argv_overrides`` maps field names to flag values (None = not given);
        ``environ`` is the process environment (pass ``os.environ``; tests pass a dict).

        Raises ``ConfigError`` naming the field and source of the first bad value.
        """
        argv_overrides = dict(argv_overrides or {})
        environ = environ or {}
        unknown = sorted(set(argv_overrides) - set(_SPECS))
        if unknown:
            raise ConfigError("unknown_field", f"config: unknown field(s) {', '.join(unknown)}", unknown[0])
        values: dict[str, Any] = {}
        sources: dict[str, str] = {}
        for name, spec in _SPECS.items():
            raw, source = _pick(name, argv_overrides, environ)
            if raw is None:
                sources[name] = "default"
                continue
            values[name] = spec.read(name, raw, source)
            sources[name] = source
        if "db_path" not in values:
            values["db_path"] = Path(values.get("data_dir", cls.data_dir)) / "fixlens.db"
        if "scene_dir" not in values and not IN_SOURCE_CHECKOUT:
            values["scene_dir"] = Path(values.get("data_dir", cls.data_dir)) / "scenes"
        _check_secret(values, sources)
        return cls(**values, sources=sources)

    @classmethod
    def from_args(cls, args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> Config:
        """Build from a namespace parsed with ``add_config_flags`` (flags left out are None)."""
        return cls.from_sources({name: getattr(args, name) for name in _SPECS if hasattr(args, name)}, environ)

    @property
    def secret_is_dev(self) -> bool:
        return self.secret == DEV_SECRET

    def limits(self) -> Limits:
        """The protocol limits these settings imply (decoder and `welcome.limits`)."""
        return Limits(max_frame_bytes=self.max_frame_bytes, max_width=self.max_width, max_height=self.max_height,
                      max_fps=self.max_fps, max_message_bytes=self.max_frame_bytes + FRAME_OVERHEAD_BYTES)

    def decode_limits(self) -> DecodeLimits:
        """The vision decoder's guards under these settings: the frames the protocol accepts, and no more
        (``max_pixels`` is the largest frame both sides allow)."""
        return DecodeLimits(max_pixels=self.max_width * self.max_height, max_bytes=self.max_frame_bytes,
                            max_width=self.max_width, max_height=self.max_height)

    def source_of(self, name: str) -> str:
        return self.sources.get(name, "default")


def env_name(name: str) -> str:
    return ENV_PREFIX + name.upper()


def flag_name(name: str) -> str:
    return "--" + name.replace("_", "-")


def unknown_env_vars(environ: Mapping[str, str]) -> list[str]:
    """``FIXLENS_*`` variables that configure nothing (likely typos); the server logs them at start."""
    known = {env_name(n) for n in _SPECS} | set(EXTRA_ENV_VARS)
    return sorted(k for k in environ if k.startswith(ENV_PREFIX) and k not in known)


# Variables read elsewhere in the project that unknown_env_vars() must not report.
EXTRA_ENV_VARS: tuple[str, ...] = ()


# Values that may hold a password: never echoed in errors, and no CLI flag (a flag shows in ``ps`` output).
HIDDEN_FIELDS = ("secret", "database_url", "redis_url")


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    """Add one ``--flag`` per config field (except the hidden ones); every default is None = "not given"."""
    for name, spec in _SPECS.items():
        if name in HIDDEN_FIELDS:
            continue
        parser.add_argument(flag_name(name), dest=name, default=None, metavar=spec.metavar,
                            help=f"{spec.help} (env {env_name(name)}; default {_default_text(name)})")


def _default_text(name: str) -> str:
    value = {f.name: f.default for f in fields(Config)}[name]
    if name == "scene_dir" and not IN_SOURCE_CHECKOUT:
        return "<data_dir>/scenes"
    return "<data_dir>/fixlens.db" if name == "db_path" else str(value)


def _pick(name: str, argv: Mapping[str, Any], environ: Mapping[str, str]) -> tuple[Any, str]:
    if argv.get(name) is not None:
        return argv[name], f"flag {flag_name(name)}"
    env = env_name(name)
    if env in environ and environ[env] != "":  # an empty variable means "unset", as shells often leave them
        return environ[env], f"environment variable {env}"
    return None, "default"


def _check_secret(values: dict[str, Any], sources: dict[str, str]) -> None:
    mode = values.get("mode", "dev")
    secret = values.get("secret")
    if mode != "production":
        return
    env = env_name("secret")
    if secret is None:
        raise ConfigError("missing_secret", f"config: secret: mode is production but no secret is configured; set "
                                            f"{env} to a random string of at least {MIN_PRODUCTION_SECRET_CHARS} "
                                            f"characters (e.g. `python -c 'import secrets; "
                                            f"print(secrets.token_urlsafe(32))'`)", "secret")
    if secret == DEV_SECRET:
        raise ConfigError("bad_value", f"config: secret: the public development secret cannot be used in production "
                                       f"({sources['secret']})", "secret")
    if len(secret) < MIN_PRODUCTION_SECRET_CHARS:
        raise ConfigError("bad_value", f"config: secret: expected at least {MIN_PRODUCTION_SECRET_CHARS} characters "
                                       f"in production, got {len(secret)} ({sources['secret']})", "secret")


# ---------------------------------------------------------------- field specs


@dataclass(frozen=True)
class _Spec:
    parse: Callable[[Any], Any]  # raises ValueError with the "expected ..." text
    help: str
    metavar: str = "VALUE"

    def read(self, name: str, raw: Any, source: str) -> Any:
        try:
            return self.parse(raw)
        except (ValueError, TypeError) as exc:
            shown = "<hidden>" if name in HIDDEN_FIELDS else repr(raw)
            raise ConfigError("bad_value", f"config: {name}: {exc}, got {shown} (from {source})", name) from None


def _int(lo: int, hi: int) -> Callable[[Any], int]:
    def parse(raw: Any) -> int:
        text = str(raw).strip().replace("_", "")
        if isinstance(raw, bool) or not re.fullmatch(r"[+-]?\d+", text):
            raise ValueError(f"expected an integer in {lo}..{hi}")
        value = int(text)
        if not lo <= value <= hi:
            raise ValueError(f"expected an integer in {lo}..{hi}")
        return value
    return parse


def _float(lo: float, hi: float, *, lo_open: bool = False) -> Callable[[Any], float]:
    def parse(raw: Any) -> float:
        bracket = "(" if lo_open else "["
        try:
            value = float(raw) if not isinstance(raw, bool) else math.nan
        except ValueError:
            value = math.nan
        if not math.isfinite(value) or value < lo or value > hi or (lo_open and value == lo):
            raise ValueError(f"expected a number in {bracket}{lo:g}, {hi:g}]")
        return value
    return parse


def _choice(*options: str) -> Callable[[Any], str]:
    def parse(raw: Any) -> str:
        value = str(raw).strip().lower()
        if value not in options:
            raise ValueError(f"expected one of {', '.join(options)}")
        return value
    return parse


def _path(raw: Any) -> Path:
    text = str(raw).strip()
    if not text or "\0" in text:
        raise ValueError("expected a file system path")
    return Path(text).expanduser()


def _existing_dir(raw: Any) -> Path:
    path = _path(raw)
    if not path.is_dir():
        raise ValueError("expected an existing directory")
    return path


def _database_url(raw: Any) -> str | None:
    from urllib.parse import urlsplit

    text = str(raw).strip()
    if not text:
        return None  # explicitly unset: the SQLite file
    if urlsplit(text).scheme not in ("postgresql", "postgres"):
        raise ValueError("expected postgresql://user:password@host:port/database")
    return text


def _redis_url(raw: Any) -> str | None:
    from urllib.parse import urlsplit

    text = str(raw).strip()
    if not text:
        return None  # explicitly unset: a single node
    if urlsplit(text).scheme not in ("redis", "rediss", "unix"):
        raise ValueError("expected redis://[:password@]host:port/db (or rediss:// or unix://)")
    return text


def _node_id(raw: Any) -> str:
    value = str(raw).strip()
    if not re.fullmatch(r"[A-Za-z0-9_.\-]{1,64}", value):
        raise ValueError("expected 1 to 64 letters, digits, _ . or -")
    return value


def _host(raw: Any) -> str:
    value = str(raw).strip()
    if not re.fullmatch(r"[A-Za-z0-9.\-:\[\]]{1,253}", value):
        raise ValueError("expected a host name or IP address")
    return value


def _device(raw: Any) -> str:
    value = str(raw).strip().lower()
    if not re.fullmatch(r"auto|cpu|cuda(:\d{1,2})?", value):
        raise ValueError("expected auto, cpu, cuda or cuda:N")
    return value


def _secret(raw: Any) -> str:
    value = str(raw)
    if not value.strip() or len(value) > 4096:
        raise ValueError("expected a non-empty string of at most 4096 characters")
    return value


_SPECS: dict[str, _Spec] = {
    "host": _Spec(_host, "address to listen on", "HOST"),
    "port": _Spec(_int(0, 65535), "TCP port to listen on (0 = any free port)", "PORT"),
    "mode": _Spec(_choice("dev", "production"), "dev or production (production requires a secret)", "MODE"),
    "secret": _Spec(_secret, "HMAC secret for tokens"),
    "data_dir": _Spec(_path, "directory for server data", "DIR"),
    "db_path": _Spec(_path, "SQLite database file", "FILE"),
    "db_synchronous": _Spec(_choice("normal", "full"), "SQLite synchronous pragma (normal survives a process "
                                                       "kill; full also survives power loss)", "LEVEL"),
    "database_url": _Spec(_database_url, "PostgreSQL URL postgresql://user:password@host:port/db, for several "
                                         "nodes sharing one store (unset: the SQLite file db_path)", "URL"),
    "scene_dir": _Spec(_existing_dir, "directory of scene YAML files", "DIR"),
    "catalog_dir": _Spec(_existing_dir, "directory of the product catalog", "DIR"),
    "max_frame_bytes": _Spec(_int(1024, 64 * 1024 * 1024), "largest accepted JPEG, bytes", "BYTES"),
    "max_width": _Spec(_int(16, 16384), "largest accepted frame width, pixels", "PX"),
    "max_height": _Spec(_int(16, 16384), "largest accepted frame height, pixels", "PX"),
    "max_fps": _Spec(_float(0.0, 240.0, lo_open=True), "frames processed per second per session", "FPS"),
    "batch_size": _Spec(_int(1, 256), "frames per inference batch", "N"),
    "batch_wait_ms": _Spec(_float(0.0, 1000.0), "wait for a fuller batch, milliseconds", "MS"),
    "device": _Spec(_device, "inference device: auto, cpu, cuda or cuda:N", "DEVICE"),
    "weights_dir": _Spec(_existing_dir, "folder of the vision weights (fixlens-pose.onnx/.pt, keypoints.onnx, "
                         "part-states.onnx)",
                         "DIR"),
    "backend": _Spec(_choice("auto", "onnx", "torch"), "detector backend: auto (torch on CUDA, else onnx), onnx "
                                                       "or torch", "BACKEND"),
    "token_ttl_s": _Spec(_int(60, 366 * 24 * 3600), "token lifetime, seconds", "SECONDS"),
    "store_frames_dir": _Spec(_path, "store frames of consenting sessions here (unset: store none)", "DIR"),
    "session_idle_timeout_s": _Spec(_float(1.0, 7 * 24 * 3600.0), "end a silent session after, seconds",
                                    "SECONDS"),
    "hello_timeout_s": _Spec(_float(0.5, 600.0), "close a connection without hello after, seconds", "SECONDS"),
    "max_connections": _Spec(_int(1, 1_000_000), "stream connections in total", "N"),
    "max_unauthenticated_per_address": _Spec(_int(1, 100_000), "connections per remote address before hello",
                                             "N"),
    "first_request_timeout_s": _Spec(_float(0.5, 600.0), "close a TCP connection that has not sent a whole "
                                                         "request line and headers after, seconds", "SECONDS"),
    "max_pre_request_per_address": _Spec(_int(1, 100_000), "TCP connections per remote address before their "
                                                            "first HTTP request", "N"),
    "max_keepalive_per_address": _Spec(_int(1, 100_000), "idle keep-alive connections kept per remote address "
                                                          "(past it the least recently used is closed)", "N"),
    "max_outbound_messages": _Spec(_int(4, 100_000), "messages queued to a client that does not read", "N"),
    "max_outbound_bytes": _Spec(_int(64 * 1024, 1024 * 1024 * 1024), "bytes queued to a client that does not "
                                                                      "read", "BYTES"),
    "bad_messages_per_s": _Spec(_float(0.0, 10_000.0, lo_open=True), "refused messages per second per "
                                                                       "customer before a close", "RATE"),
    "bad_messages_burst": _Spec(_int(1, 1_000_000), "refused messages in a burst before a close", "N"),
    "events_per_s": _Spec(_float(0.0, 10_000.0, lo_open=True), "user events per second per customer", "RATE"),
    "events_burst": _Spec(_int(1, 1_000_000), "user events in a burst", "N"),
    "escalations_per_minute": _Spec(_float(0.0, 10_000.0, lo_open=True), "escalations per minute per session",
                                    "RATE"),
    "escalations_burst": _Spec(_int(1, 1_000_000), "escalations in a burst per session", "N"),
    "max_open_escalations": _Spec(_int(1, 1_000_000), "open escalations per session", "N"),
    "sessions_per_minute": _Spec(_float(0.0, 1_000_000.0, lo_open=True), "sessions a customer may create per "
                                                                           "minute", "RATE"),
    "sessions_burst": _Spec(_int(1, 1_000_000), "sessions a customer may create in a burst", "N"),
    "decode_workers": _Spec(_int(1, 256), "threads that decode frames", "N"),
    "max_decoded_mb": _Spec(_int(16, 1024 * 1024), "decoded frames held before inference, MiB", "MIB"),
    "link_ttl_s": _Spec(_int(10, 24 * 3600), "a support link's single-use token lasts this long, seconds",
                        "SECONDS"),
    "agent_frame_fps": _Spec(_float(0.0, 15.0, lo_open=True), "camera frames per second sent to a watching "
                                                               "agent, at most", "FPS"),
    "agent_frame_width": _Spec(_int(80, 1280), "width of the frames sent to agents, pixels", "PX"),
    "redis_url": _Spec(_redis_url, "Redis URL redis://[:password@]host:port/db shared by the nodes of a cluster "
                                   "(unset: a single node)", "URL"),
    "node_id": _Spec(_node_id, "this node's name in the cluster's session directory (default <hostname>-<pid>)",
                     "NAME"),
    "lease_ttl_s": _Spec(_float(1.0, 600.0), "a dead node's session leases expire after, seconds", "SECONDS"),
}
