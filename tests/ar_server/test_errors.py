from __future__ import annotations

import pytest

from ar_server.errors import AuthError, ConfigError, ProtocolError, ServerError, StoreError


@pytest.mark.parametrize("cls", [ProtocolError, AuthError, ConfigError, StoreError])
def test_every_error_is_a_server_error_with_code_and_field(cls: type[ServerError]) -> None:
    error = cls("bad_field", "expected an int, got str", "seq")
    assert isinstance(error, ServerError)
    assert (error.code, error.message, error.field) == ("bad_field", "expected an int, got str", "seq")
    assert str(error) == "bad_field: expected an int, got str (seq)"
    assert str(cls("x", "y")) == "x: y"
