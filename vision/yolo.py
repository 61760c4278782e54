"""Importing Ultralytics without letting it write to stdout.

On a machine where it has never run, Ultralytics announces the settings file it creates, on stdout, the
moment it is imported; a command asked for ``--json`` would then print three lines of text before its JSON.
Its logger binds the stream it writes to when it is imported, so importing it with stdout sent to stderr
sends everything it logs afterwards there too. ``YOLO_OFFLINE`` keeps it from reaching for the network
(fonts, version checks): nothing can be fetched at run time.
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Any


def load_yolo() -> Any:
    """Ultralytics' ``YOLO`` class, its output going to stderr."""
    os.environ.setdefault("YOLO_OFFLINE", "1")
    with contextlib.redirect_stdout(sys.stderr):
        from ultralytics import YOLO
    return YOLO
