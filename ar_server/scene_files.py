"""The scene folder as the REST API sees it: the loaded library, validated writes, and path-safe ids.

Writes are atomic (a temporary file in the same folder, fsync, ``os.replace``), so a reader or a crash sees
the old file or the new one, never half of one. Every earlier version is kept in the store (the file that
was there before the first API write included), so an overwrite loses nothing.

An installed server keeps its scenes in ``<data_dir>/scenes``, never inside the package. That folder is seeded
from the shipped library (:func:`seed_scene_folder`): created with every shipped scene on first use, and given
the scenes a later release adds. A scene copied once is never copied again, so an edit or a deletion stands.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import threading
from pathlib import Path

from ar_server.errors import ServerError
from ar_server.protocol.fields import IDENT
from product_models.catalog import Catalog
from scenes import Issue, Library, Scene, check_text, load_library
from scenes.collection import LIBRARY_DIR, scene_files

log = logging.getLogger(__name__)
# In a seeded folder: the names of the shipped scenes ever copied into it, one a line. A folder without it
# (the source tree's library, a folder given with --scene-dir) is never seeded.
SEED_MANIFEST = ".shipped-scenes"


class SceneFiles:
    def __init__(self, folder: Path, catalog: Catalog) -> None:
        self.folder = Path(folder)
        self.catalog = catalog
        seed_scene_folder(self.folder)
        self.library: Library = load_library(self.folder, catalog)
        self._write_lock = threading.Lock()  # one writer at a time across worker threads
        self.api_lock = asyncio.Lock()  # one REST write at a time: version bookkeeping and file together

    def path_for(self, scene_id: str) -> Path:
        """The file of ``scene_id``. Raises ``ServerError("bad_id")`` for anything that is not a plain ident
        (``..``, slashes, NUL, dots first): ids never become paths outside the folder."""
        if not IDENT.match(scene_id) or scene_id.startswith(".") or ".." in scene_id:
            raise ServerError("bad_id", f"scene id {scene_id[:80]!r} must match {IDENT.pattern} (no path "
                                        "separators or '..')", "id")
        path = self.folder / f"{scene_id}.yaml"
        if path.resolve().parent != self.folder.resolve():
            raise ServerError("bad_id", f"scene id {scene_id!r} does not name a file in the scene folder", "id")
        return path

    def text(self, scene_id: str) -> str | None:
        path = self.path_for(scene_id)
        return path.read_text(encoding="utf-8") if path.is_file() else None

    def check(self, scene_id: str, text: str) -> tuple[Scene | None, list[Issue]]:
        """Validate like ``fixlens scenes check`` would on the target file: same file:line:col issues."""
        path = self.path_for(scene_id)
        scene, issues = check_text(text, str(path), self.catalog)
        if scene is not None and scene.id != scene_id:
            line = next((n for n, row in enumerate(text.splitlines(), start=1) if row.startswith("id:")), 1)
            issues.append(Issue(str(path), line, 1, "id", "error",
                                f"scene id {scene.id!r} does not match the id in the URL {scene_id!r}"))
            scene = None
        for other in self.library:
            if scene is not None and other.id == scene_id and Path(other.source).resolve() != path.resolve():
                issues.append(Issue(str(path), 1, 1, "id", "error", f"scene id {scene_id!r} is already defined "
                                                                     f"by {other.source}"))
                scene = None
        if any(i.severity == "error" for i in issues):
            scene = None
        return scene, issues

    def write(self, scene_id: str, text: str) -> None:
        """Atomically replace the file and reload the library; on a reload failure the old file is restored."""
        path = self.path_for(scene_id)
        with self._write_lock:
            previous = path.read_text(encoding="utf-8") if path.is_file() else None
            _atomic_write(path, text)
            try:
                self.library = load_library(self.folder, self.catalog)
            except Exception:
                if previous is None:
                    path.unlink(missing_ok=True)
                else:
                    _atomic_write(path, previous)
                raise


def seed_scene_folder(folder: Path, shipped: Path = LIBRARY_DIR) -> list[str]:
    """Copy shipped scene files into ``folder`` and return their names. A missing ``folder`` is created with
    every scene of ``shipped``; a folder seeded before gets only the shipped scenes it never had. A folder that
    exists without :data:`SEED_MANIFEST` is left alone. Raises ``ServerError("storage_unavailable")`` naming
    the folder when it cannot be written."""
    manifest = folder / SEED_MANIFEST
    if folder.is_dir() and not manifest.is_file():
        return []
    try:
        folder.mkdir(parents=True, exist_ok=True)
        known = set(manifest.read_text(encoding="utf-8").split()) if manifest.is_file() else set()
        copied = []
        for source in scene_files(shipped):
            if source.name in known:
                continue
            if not (folder / source.name).exists():
                _atomic_write(folder / source.name, source.read_text(encoding="utf-8"))
                copied.append(source.name)
            known.add(source.name)
        if copied or not manifest.is_file():
            _atomic_write(manifest, "".join(f"{name}\n" for name in sorted(known)))
    except OSError as exc:
        raise ServerError("storage_unavailable", f"cannot seed the scene folder {folder} with the shipped "
                                                 f"scenes: {exc.strerror or exc}", "scene_dir") from None
    if copied:
        log.info("scene folder %s: copied %d shipped scene(s): %s", folder, len(copied), ", ".join(copied))
    return copied


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # make the rename itself durable
    finally:
        os.close(dir_fd)
