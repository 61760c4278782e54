from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pytest

from ar_server.config import DEV_SECRET, Config, add_config_flags, unknown_env_vars
from ar_server.errors import ConfigError

PROD_SECRET = "p" * 40


def test_defaults() -> None:
    config = Config.from_sources({}, {})
    assert (config.host, config.port, config.mode, config.device) == ("127.0.0.1", 8080, "dev", "auto")
    assert config.secret == DEV_SECRET and config.secret_is_dev
    assert config.db_path == Path("fixlens-data/fixlens.db")
    assert config.max_frame_bytes == 2 * 1024 * 1024 and (config.max_width, config.max_height) == (1920, 1920)
    assert config.store_frames_dir is None
    assert config.source_of("port") == "default"
    assert DEV_SECRET not in repr(config)


def test_flag_beats_environment_beats_default(tmp_path: Path) -> None:
    env = {"FIXLENS_PORT": "9000", "FIXLENS_MAX_FPS": "12.5", "FIXLENS_DATA_DIR": str(tmp_path)}
    config = Config.from_sources({"port": 9100, "host": None}, env)
    assert config.port == 9100 and config.source_of("port") == "flag --port"
    assert config.max_fps == 12.5 and config.source_of("max_fps") == "environment variable FIXLENS_MAX_FPS"
    assert config.host == "127.0.0.1" and config.source_of("host") == "default"
    assert config.db_path == tmp_path / "fixlens.db"  # follows data_dir unless set itself


def test_db_path_can_be_set_apart_from_data_dir(tmp_path: Path) -> None:
    config = Config.from_sources({"db_path": str(tmp_path / "x.db")}, {"FIXLENS_DATA_DIR": "/srv/fixlens"})
    assert config.db_path == tmp_path / "x.db" and config.data_dir == Path("/srv/fixlens")


def test_empty_environment_variable_means_unset() -> None:
    assert Config.from_sources({}, {"FIXLENS_PORT": ""}).port == 8080


def test_limits_follow_the_config() -> None:
    limits = Config.from_sources({"max_frame_bytes": "100000", "max_width": "800"}, {}).limits()
    assert limits.max_frame_bytes == 100000 and limits.max_width == 800
    assert limits.max_message_bytes > limits.max_frame_bytes


def test_production_without_secret_fails_clearly() -> None:
    with pytest.raises(ConfigError) as info:
        Config.from_sources({}, {"FIXLENS_MODE": "production"})
    assert info.value.code == "missing_secret" and "FIXLENS_SECRET" in info.value.message


@pytest.mark.parametrize(("secret", "text"), [(DEV_SECRET, "development secret"), ("short", "at least 32")])
def test_production_refuses_weak_secrets(secret: str, text: str) -> None:
    with pytest.raises(ConfigError, match=text) as info:
        Config.from_sources({"mode": "production"}, {"FIXLENS_SECRET": secret})
    assert info.value.field == "secret"
    if secret != DEV_SECRET:
        assert secret not in info.value.message  # never echo a secret


def test_production_with_secret() -> None:
    config = Config.from_sources({"mode": "production"}, {"FIXLENS_SECRET": PROD_SECRET})
    assert config.mode == "production" and config.secret == PROD_SECRET and not config.secret_is_dev


BAD: list[tuple[str, dict[str, Any], dict[str, str], str, str]] = [
    # (case, flags, environment, field, text that must appear: value and source)
    ("port text env", {}, {"FIXLENS_PORT": "http"}, "port", "'http' (from environment variable FIXLENS_PORT)"),
    ("port too big flag", {"port": "70000"}, {}, "port", "0..65535, got '70000' (from flag --port)"),
    ("port float", {"port": "80.5"}, {}, "port", "integer"),
    ("mode", {}, {"FIXLENS_MODE": "prod"}, "mode", "dev, production"),
    ("host", {"host": "a host"}, {}, "host", "host name"),
    ("max_frame_bytes tiny", {}, {"FIXLENS_MAX_FRAME_BYTES": "10"}, "max_frame_bytes", "1024.."),
    ("max_width zero", {"max_width": 0}, {}, "max_width", "16..16384"),
    ("max_height huge", {}, {"FIXLENS_MAX_HEIGHT": "100000"}, "max_height", "FIXLENS_MAX_HEIGHT"),
    ("max_fps zero", {"max_fps": "0"}, {}, "max_fps", "(0, 240]"),
    ("max_fps nan", {}, {"FIXLENS_MAX_FPS": "nan"}, "max_fps", "'nan'"),
    ("batch_size zero", {"batch_size": 0}, {}, "batch_size", "1..256"),
    ("batch_wait negative", {}, {"FIXLENS_BATCH_WAIT_MS": "-1"}, "batch_wait_ms", "[0, 1000]"),
    ("device", {"device": "tpu"}, {}, "device", "auto, cpu, cuda"),
    ("token ttl", {}, {"FIXLENS_TOKEN_TTL_S": "5"}, "token_ttl_s", "60.."),
    ("idle timeout", {"session_idle_timeout_s": "inf"}, {}, "session_idle_timeout_s", "'inf'"),
    ("scene_dir missing", {"scene_dir": "/no/such/dir"}, {}, "scene_dir", "existing directory"),
    ("catalog_dir missing", {}, {"FIXLENS_CATALOG_DIR": "/no/such"}, "catalog_dir", "FIXLENS_CATALOG_DIR"),
    ("db_synchronous", {}, {"FIXLENS_DB_SYNCHRONOUS": "off"}, "db_synchronous", "normal, full"),
    ("secret blank", {}, {"FIXLENS_SECRET": "   "}, "secret", "<hidden>"),
    ("weights_dir missing", {}, {"FIXLENS_WEIGHTS_DIR": "/no/weights"}, "weights_dir", "FIXLENS_WEIGHTS_DIR"),
    ("backend", {"backend": "tensorrt"}, {}, "backend", "auto, onnx, torch"),
    ("first request timeout too short", {}, {"FIXLENS_FIRST_REQUEST_TIMEOUT_S": "0.1"}, "first_request_timeout_s",
     "[0.5, 600], got '0.1' (from environment variable FIXLENS_FIRST_REQUEST_TIMEOUT_S)"),
    ("keep-alive cap zero", {}, {"FIXLENS_MAX_KEEPALIVE_PER_ADDRESS": "0"}, "max_keepalive_per_address",
     "1..100000, got '0'"),
    ("pre-request cap zero", {"max_pre_request_per_address": "0"}, {}, "max_pre_request_per_address",
     "1..100000, got '0' (from flag --max-pre-request-per-address)"),
]


def test_accept_limits_come_from_flag_or_environment() -> None:
    config = Config.from_sources({"max_pre_request_per_address": "5"}, {"FIXLENS_FIRST_REQUEST_TIMEOUT_S": "2.5"})
    assert config.max_pre_request_per_address == 5 and config.first_request_timeout_s == 2.5
    assert Config().max_pre_request_per_address == 32 and Config().first_request_timeout_s == 10.0
    assert Config.from_sources({}, {"FIXLENS_MAX_KEEPALIVE_PER_ADDRESS": "3"}).max_keepalive_per_address == 3
    assert Config().max_keepalive_per_address == 64


def test_weights_dir_and_backend_come_from_flag_or_environment(tmp_path: Path) -> None:
    config = Config.from_sources({"backend": "onnx"}, {"FIXLENS_WEIGHTS_DIR": str(tmp_path),
                                                      "FIXLENS_BACKEND": "torch"})
    assert config.weights_dir == tmp_path and config.backend == "onnx"
    assert Config().weights_dir.name == "weights" and Config().backend == "auto"


@pytest.mark.parametrize(("flags", "env", "field", "text"), [row[1:] for row in BAD], ids=[row[0] for row in BAD])
def test_bad_value_names_field_and_source(flags: dict[str, Any], env: dict[str, str], field: str, text: str) -> None:
    with pytest.raises(ConfigError) as info:
        Config.from_sources(flags, env)
    assert info.value.field == field
    assert info.value.message.startswith(f"config: {field}: ")
    assert text in info.value.message, info.value.message


def test_unknown_override_field_is_a_programming_error() -> None:
    with pytest.raises(ConfigError, match="prot"):
        Config.from_sources({"prot": 1}, {})


def test_unknown_env_vars_are_reported() -> None:
    assert unknown_env_vars({"FIXLENS_PROT": "1", "FIXLENS_PORT": "1", "HOME": "/"}) == ["FIXLENS_PROT"]


def test_argparse_flags_feed_the_config(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    add_config_flags(parser)
    args = parser.parse_args(["--port", "0", "--max-frame-bytes", "50000", "--scene-dir", str(tmp_path)])
    config = Config.from_args(args, {"FIXLENS_PORT": "1234"})
    assert config.port == 0 and config.max_frame_bytes == 50000 and config.scene_dir == tmp_path
    with pytest.raises(SystemExit):  # no --secret flag: secrets on a command line leak through `ps`
        parser.parse_args(["--secret", "x"])


def test_config_is_frozen() -> None:
    config = Config.from_sources({}, {})
    with pytest.raises(AttributeError):
        config.port = 1  # type: ignore[misc]


def test_the_database_url_is_checked_never_echoed_and_has_no_flag() -> None:
    """A URL may hold a password: a bad one is refused naming the field but not its value, it never shows in
    ``repr``, and it has no CLI flag (flags show in ``ps``)."""
    with pytest.raises(ConfigError) as raised:
        Config.from_sources({}, {"FIXLENS_DATABASE_URL": "mysql://fixlens:hunter2@db/fixlens"})
    assert "database_url" in raised.value.message and "expected postgresql://" in raised.value.message
    assert "hunter2" not in raised.value.message
    url = "postgresql://fixlens:hunter2@db:5432/fixlens"
    config = Config.from_sources({}, {"FIXLENS_DATABASE_URL": url})
    assert config.database_url == url and "hunter2" not in repr(config)
    assert Config.from_sources({}, {}).database_url is None
    parser = argparse.ArgumentParser()
    add_config_flags(parser)
    with pytest.raises(SystemExit):
        parser.parse_args(["--database-url", url])
