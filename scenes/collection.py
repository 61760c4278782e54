"""A folder of scenes: loading, cross-file checks, and picking the right scene for what the camera sees.

Only ``*.yaml`` files directly inside a library folder are scenes; sub-folders (such as ``examples/``) and
``*.events.yaml`` files are not, so simulator inputs can live beside the scenes.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from product_models.catalog import Catalog, default_catalog
from scenes.conditions import evaluate, holds, specificity
from scenes.errors import SceneError, SceneValidationError
from scenes.events import Observation
from scenes.i18n import pick
from scenes.loader import check_file
from scenes.model import Issue, Scene, Trigger

LIBRARY_DIR = Path(__file__).parent / "library"  # the shipped library
SCENE_DIR_ENV = "FIXLENS_SCENE_DIR"  # the same variable the server's ``scene_dir`` reads
EVENTS_SUFFIX = ".events.yaml"


def library_dir() -> Path:
    """The scene library the commands use unless told otherwise: ``$FIXLENS_SCENE_DIR`` when set (a support
    organisation's own scenes, or a test's temporary library), else the shipped one."""
    override = os.environ.get(SCENE_DIR_ENV, "")
    return Path(override) if override else LIBRARY_DIR


def scene_files(folder: str | Path) -> list[Path]:
    """The scene files of a library folder, sorted by name (which is the library's order)."""
    return sorted(p for p in Path(folder).glob("*.yaml") if p.is_file() and not p.name.endswith(EVENTS_SUFFIX))


def check_paths(paths: Iterable[str | Path], catalog: Catalog | None = None) -> tuple[list[Scene], list[Issue]]:
    """Check scene files and folders; returns the valid scenes and every issue, duplicates included."""
    catalog = catalog or default_catalog()
    scenes: list[Scene] = []
    issues: list[Issue] = []
    files: list[Path | Issue] = []  # in the order given, so the report follows the command line
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = scene_files(path)
            files.extend(found or [Issue(str(path), 1, 1, "", "error", "folder holds no scene files (*.yaml)")])
        elif path.exists():
            files.append(path)
        else:
            files.append(Issue(str(path), 1, 1, "", "error", "no such file or folder"))
    first: dict[str, Scene] = {}
    for file in files:
        if isinstance(file, Issue):
            issues.append(file)
            continue
        scene, found_issues = check_file(file, catalog)
        issues.extend(found_issues)
        if scene is None:
            continue
        if scene.id in first:
            other = first[scene.id].source
            issues.append(Issue(str(file), _id_line(file), 1, "id", "error",
                                f"duplicate scene id {scene.id!r}; {other} already defines it"))
            continue
        first[scene.id] = scene
        scenes.append(scene)
    return scenes, issues


def _id_line(file: Path) -> int:
    """Line of the top-level ``id:`` key (the scene parsed, so the file is readable YAML)."""
    for number, line in enumerate(file.read_text(encoding="utf-8").splitlines(), start=1):
        if line.startswith("id:"):
            return number
    return 1


class Library:
    """Valid scenes in library order, with lookup by id."""

    def __init__(self, scenes: Iterable[Scene], warnings: Iterable[Issue] = ()) -> None:
        self.scenes: tuple[Scene, ...] = tuple(scenes)
        self.warnings: tuple[Issue, ...] = tuple(warnings)
        self._by_id = {s.id: s for s in self.scenes}

    def get(self, scene_id: str) -> Scene:
        try:
            return self._by_id[scene_id]
        except KeyError:
            known = ", ".join(self._by_id) or "(none)"
            raise SceneError(f"unknown scene {scene_id!r}; known scenes: {known}") from None

    def __contains__(self, scene_id: object) -> bool:
        return scene_id in self._by_id

    def __iter__(self) -> Iterator[Scene]:
        return iter(self.scenes)

    def __len__(self) -> int:
        return len(self.scenes)


def load_library(path: str | Path | None = None, catalog: Catalog | None = None) -> Library:
    """Load every scene in a folder (None: :func:`library_dir`). Raises :class:`SceneValidationError` listing
    every error."""
    path = library_dir() if path is None else path
    if not Path(path).is_dir():
        raise SceneError(f"{path}: scene library folder does not exist")
    scenes, issues = check_paths([path], catalog)
    if any(i.severity == "error" for i in issues):
        raise SceneValidationError(issues)
    return Library(scenes, issues)


def find_scene(spec: str, library: str | Path | None = None, catalog: Catalog | None = None) -> Scene:
    """A scene by id from ``library`` (None: :func:`library_dir`), or by path to a scene file."""
    if spec.endswith((".yaml", ".yml")) or "/" in spec:
        scenes, issues = check_paths([spec], catalog)
        if not scenes:
            raise SceneValidationError(issues)
        return scenes[0]
    return load_library(library, catalog).get(spec)


@dataclass(frozen=True)
class Selection:
    scene: Scene
    trigger: Trigger
    reason: str  # the trigger's reason, localized
    specificity: int


MIN_CONFIDENCE = 0.5  # a part read less surely than this is unknown to a trigger


def known_states(observation: Observation, min_confidence: float = MIN_CONFIDENCE) -> dict[str, str]:
    """The part states ``observation`` reads surely enough for a trigger to use."""
    return {name: r.state for name, r in observation.parts.items() if r.confidence >= min_confidence}


def select(library: Iterable[Scene], observation: Observation, locale: str = "en", *,
           min_confidence: float = MIN_CONFIDENCE) -> Selection | None:
    """The scene whose trigger matches ``observation`` most specifically; ties go to library order."""
    if observation.product is None:
        return None
    states = known_states(observation, min_confidence)
    best: Selection | None = None
    for scene in library:
        if scene.product != observation.product:
            continue
        for trigger in scene.triggers:
            if not holds(trigger.condition, states):
                continue
            score = specificity(trigger.condition)
            if best is None or score > best.specificity:
                best = Selection(scene, trigger, pick(trigger.reason, locale, scene.default_locale), score)
    return best


def better_open(library: Iterable[Scene], observation: Observation, selection: Selection, *,
                min_confidence: float = MIN_CONFIDENCE) -> bool:
    """Whether another scene of the product has a trigger more specific than ``selection``'s that the parts
    read neither make hold nor rule out: the camera has not yet seen what would tell the two apart (a red
    status light, and the cartridge on the side not yet seen: "cartridge missing" or "settings lost")."""
    states = known_states(observation, min_confidence)
    return any(scene.id != selection.scene.id and scene.product == observation.product
               and specificity(t.condition) > selection.specificity and evaluate(t.condition, states) is None
               for scene in library for t in scene.triggers)
