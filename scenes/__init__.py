"""Troubleshooting scenes: the YAML format, its validator, the pure engine, and the shipped library.

This package imports nothing heavy (no aiohttp, cv2, torch or panda3d); a test checks it.
"""

from __future__ import annotations

from scenes.collection import (
    EVENTS_SUFFIX,
    LIBRARY_DIR,
    Library,
    Selection,
    check_paths,
    find_scene,
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
    Progress,
    ShowStep,
    Tick,
    UserEvent,
)
from scenes.i18n import negotiate
from scenes.loader import check_file, check_text, load_scene
from scenes.model import Issue, Scene, Step

__all__ = [
    "EVENTS_SUFFIX",
    "LIBRARY_DIR",
    "USER_KINDS",
    "ChoiceView",
    "Effect",
    "End",
    "Engine",
    "EngineConfig",
    "Escalate",
    "Event",
    "EventsFileError",
    "IllegalEventError",
    "Issue",
    "Library",
    "Notice",
    "Observation",
    "PartObservation",
    "Progress",
    "Scene",
    "SceneError",
    "SceneValidationError",
    "Selection",
    "ShowStep",
    "SnapshotError",
    "Step",
    "Tick",
    "UserEvent",
    "check_file",
    "check_paths",
    "check_text",
    "find_scene",
    "load_library",
    "load_scene",
    "negotiate",
    "scene_files",
    "select",
]
