"""Troubleshooting scenes: the YAML format, its validator, the pure engine, and the shipped library.

This package imports nothing heavy (no aiohttp, cv2, torch or panda3d); a test checks it.
"""

from __future__ import annotations

from scenes.collection import (
    EVENTS_SUFFIX,
    LIBRARY_DIR,
    SCENE_DIR_ENV,
    Library,
    Selection,
    check_paths,
    find_scene,
    library_dir,
    load_library,
    scene_files,
    select,
)
from scenes.engine import Engine, EngineConfig
from scenes.errors import EventsFileError, IllegalEventError, SceneError, SceneValidationError, SnapshotError
from scenes.events import (
    USER_KINDS,
    ChoiceView,
    Effect,
    End,
    Escalate,
    Event,
    Notice,
    Observation,
    PartObservation,
    ShowStep,
    Tick,
    UserEvent,
)
from scenes.i18n import negotiate
from scenes.loader import check_file, check_text, load_scene
from scenes.model import COLOR_HEX, Issue, Scene, Step
from scenes.view import (
    STEP_CAUSES,
    Animate,
    Arrow,
    Highlight,
    Label,
    OverlayView,
    Progress,
    StepCause,
    overlay_view,
)

__all__ = [
    "COLOR_HEX",
    "EVENTS_SUFFIX",
    "LIBRARY_DIR",
    "SCENE_DIR_ENV",
    "STEP_CAUSES",
    "USER_KINDS",
    "Animate",
    "Arrow",
    "ChoiceView",
    "Effect",
    "End",
    "Engine",
    "EngineConfig",
    "Escalate",
    "Event",
    "EventsFileError",
    "Highlight",
    "IllegalEventError",
    "Issue",
    "Label",
    "Library",
    "Notice",
    "Observation",
    "OverlayView",
    "PartObservation",
    "Progress",
    "Scene",
    "SceneError",
    "SceneValidationError",
    "Selection",
    "ShowStep",
    "SnapshotError",
    "Step",
    "StepCause",
    "Tick",
    "UserEvent",
    "check_file",
    "check_paths",
    "check_text",
    "find_scene",
    "library_dir",
    "load_library",
    "load_scene",
    "negotiate",
    "overlay_view",
    "scene_files",
    "select",
]
