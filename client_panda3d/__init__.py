"""The Panda3D AR client and the virtual agent scene (``fixlens client``, ``fixlens agent-scene``).

Panda3D is imported only inside functions that run on the render thread, so importing this package is cheap.
"""

from __future__ import annotations

from client_panda3d.errors import ClientError, SessionError, SourceError
from client_panda3d.pose_filter import PoseTracker
from client_panda3d.steps import Status, StepView

__all__ = ["ClientError", "PoseTracker", "SessionError", "SourceError", "Status", "StepView"]
