"""Frames kept on disk, only for customers who consented in ``hello`` and only with faces blurred.

Fails closed: if the face model cannot load, nothing is stored, ``unavailable`` says why, and the session
tells the customer in a notice. Storing is off entirely unless ``store_frames_dir`` is configured. At most
one frame per ``interval_s`` per session is kept: enough to review a session, far from a video recording.
"""

from __future__ import annotations

import asyncio
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


class FrameArchive:
    def __init__(self, folder: Path | None, *, interval_s: float = 1.0) -> None:
        self.folder = folder
        self.interval_s = interval_s
        self.unavailable: str | None = None
        self._blurrer: Any = None
        # One thread: MediaPipe tasks are not meant to be shared across threads.
        self._executor: ThreadPoolExecutor | None = None
        self.stored = 0

    @property
    def enabled(self) -> bool:
        return self.folder is not None

    async def store(self, session_id: str, seq: int, jpeg: bytes) -> bool:
        """Blur faces and write ``<folder>/<session>/<seq>.jpg``; False when nothing was stored (and why is
        in ``unavailable``)."""
        if self.folder is None or self.unavailable is not None:
            return False
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fixlens-frames")
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._store, session_id, seq, jpeg)

    def _store(self, session_id: str, seq: int, jpeg: bytes) -> bool:
        from vision.decode import decode_jpeg, encode_jpeg
        from vision.errors import VisionError

        try:
            if self._blurrer is None:
                from vision.privacy import FaceBlurrer
                self._blurrer = FaceBlurrer()
            image = decode_jpeg(jpeg)
            blurred, _ = self._blurrer.blur(image)
            data = encode_jpeg(blurred)
        except VisionError as exc:
            if self._blurrer is None:  # the model is missing: fail closed for good
                self.unavailable = f"face blur unavailable, frames are not stored: {exc}"
                log.warning("%s", self.unavailable)
            return False
        assert self.folder is not None
        folder = self.folder / session_id
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{seq}.jpg.tmp"
        tmp.write_bytes(data)
        os.replace(tmp, folder / f"{seq}.jpg")
        self.stored += 1
        return True

    def close(self) -> None:
        if self._blurrer is not None:
            self._blurrer.close()
            self._blurrer = None
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
