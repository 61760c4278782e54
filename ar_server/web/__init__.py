"""The customer web page (``/``): camera frames to ``/v1/stream`` and overlays on the device, in a browser."""

from __future__ import annotations

from ar_server.web.routes import add_web_routes, content_security_policy

__all__ = ["add_web_routes", "content_security_policy"]
