"""The one base exception of ``ar_server`` and its grouped subclasses.

Every error carries a stable ``code`` (a short snake_case string that clients, logs and tests may match on;
it never changes once released) and a human ``message``. ``field`` names the offending message field, config
field or token part when there is one. ``str(error)`` is ``"code: message (field)"``.
"""

from __future__ import annotations


class ServerError(Exception):
    """Base of every error raised by ``ar_server``."""

    code: str = "server_error"

    def __init__(self, code: str, message: str, field: str | None = None, *, reason: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field
        self.reason = reason  # a finer machine-readable cause within ``code`` (``error.reason`` on the wire)

    def __str__(self) -> str:
        where = f" ({self.field})" if self.field else ""
        return f"{self.code}: {self.message}{where}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.code!r}, {self.message!r}, field={self.field!r})"


class ProtocolError(ServerError):
    """A wire message that cannot be accepted: not msgpack, wrong shape, bad or out-of-range field, too large.

    Codes: see ``ar_server.protocol.ErrorCode`` and the table in ``docs/PROTOCOL.md``.
    """


class AuthError(ServerError):
    """A token that cannot be accepted. Codes: ``malformed``, ``bad_signature``, ``expired``,
    ``not_yet_valid``, ``wrong_role``, ``forbidden``."""


class SessionStateError(ServerError):
    """An event a session core cannot take in its state (a driver bug, never a client's fault): it raises this
    and changes nothing. Code: ``illegal_event``."""


class ConfigError(ServerError):
    """A configuration value that is missing or invalid; the message names the field and where it came from."""


class StoreError(ServerError):
    """The persistence store failed or was used wrongly. Codes: ``not_found``, ``conflict``, ``bad_value``,
    ``schema_too_new``, ``closed``, ``database``, ``storage_full`` (the disk or the database's size limit is
    full; the transaction was rolled back whole)."""
