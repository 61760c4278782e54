"""The one base exception of ``scenes`` and its grouped subclasses."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from scenes.model import Issue


class SceneError(Exception):
    """Anything wrong with a scene, a scene library, an event or a saved engine state."""


class SceneValidationError(SceneError):
    """One or more scene files are invalid. ``issues`` holds every problem found (errors and warnings)."""

    def __init__(self, issues: list[Issue]) -> None:
        self.issues = list(issues)
        errors = [i for i in self.issues if i.severity == "error"]
        shown = "\n".join(str(i) for i in errors[:20])
        more = f"\n... and {len(errors) - 20} more" if len(errors) > 20 else ""
        super().__init__(f"{len(errors)} error(s) in scene files:\n{shown}{more}")


class IllegalEventError(SceneError):
    """An event the engine cannot accept in its current state. The engine is left unchanged."""


class SnapshotError(SceneError):
    """A saved engine state cannot be restored (wrong scene, unknown step, bad shape)."""


class EventsFileError(SceneError):
    """A simulator events file is invalid. ``issues`` holds every problem with file:line:col."""

    def __init__(self, issues: list[Issue]) -> None:
        self.issues = list(issues)
        super().__init__("\n".join(str(i) for i in self.issues))
