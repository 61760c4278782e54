"""Headless output: numbered PNG frames and an MP4 of the same frames."""

from __future__ import annotations

from pathlib import Path

import numpy as np


class Recorder:
    """Writes ``frames/000000.png ...`` and ``<video_name>`` under ``out`` (every ``png_every``-th frame as
    PNG; every frame into the video)."""

    def __init__(self, out: Path, fps: float, video_name: str = "view.mp4", png_every: int = 1) -> None:
        self.out, self.fps, self.video_name, self.png_every = Path(out), fps, video_name, max(1, png_every)
        (self.out / "frames").mkdir(parents=True, exist_ok=True)
        for old in (self.out / "frames").glob("*.png"):
            old.unlink()
        self._video = None
        self.count = 0

    def write(self, image: np.ndarray) -> None:
        """Add one (h, w, 3) uint8 RGB frame."""
        import cv2

        bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
        if self._video is None:
            self._video = cv2.VideoWriter(str(self.out / self.video_name), cv2.VideoWriter_fourcc(*"mp4v"),
                                          self.fps, (image.shape[1], image.shape[0]))
        self._video.write(bgr)
        if self.count % self.png_every == 0:
            cv2.imwrite(str(self.out / "frames" / f"{self.count:06d}.png"), bgr)
        self.count += 1

    def close(self) -> None:
        if self._video is not None:
            self._video.release()
            self._video = None
