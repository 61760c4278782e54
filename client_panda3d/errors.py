"""The client package's one base exception."""

from __future__ import annotations


class ClientError(Exception):
    """A client problem a user can fix: a bad source string, an unreachable server, a refused session."""


class SourceError(ClientError):
    """A frame source string that names nothing usable (the message quotes the string)."""


class SessionError(ClientError):
    """The server refused the session or the connection failed."""
