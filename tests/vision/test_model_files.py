from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import pytest

from vision import model_files as mf
from vision.errors import ModelUnavailable
from vision.model_files import ModelFiles, ensure_models


def test_models_are_made_from_the_wheel(models: ModelFiles) -> None:
    face = models.face_model.read_bytes()
    assert hashlib.sha256(face).hexdigest() == "bbff11cebd1eb27a1e004cae0b0e63ec8c551cbf34a4451148b4908b8db3eca8"
    with zipfile.ZipFile(models.hand_task) as zf:
        infos = zf.infolist()
        assert [i.filename for i in infos] == ["hand_detector.tflite", "hand_landmarks_detector.tflite"]
        # MediaPipe refuses a compressed bundle ("Expected uncompressed zip archive")
        assert all(i.compress_type == zipfile.ZIP_STORED for i in infos)


def test_bundle_is_byte_for_byte_reproducible(models: ModelFiles, tmp_path: Path) -> None:
    again = ensure_models(tmp_path)
    assert again.hand_task.read_bytes() == models.hand_task.read_bytes()
    assert again.face_model.read_bytes() == models.face_model.read_bytes()


def test_existing_files_are_kept(tmp_path: Path) -> None:
    (tmp_path / mf.HAND_TASK).write_bytes(b"mine")
    (tmp_path / mf.FACE_MODEL).write_bytes(b"mine")
    ensure_models(tmp_path)
    assert (tmp_path / mf.HAND_TASK).read_bytes() == b"mine"


def test_failed_download_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mf, "WHEEL_REQUIREMENT", "mediapipe==0.0.0.1")
    monkeypatch.setattr(mf, "WHEEL_NAME", "mediapipe-0.0.0.1-cp311-cp311-manylinux_2_28_x86_64.whl")
    with pytest.raises(ModelUnavailable, match=r"downloading mediapipe==0.0.0.1 from the package index failed"):
        ensure_models(tmp_path / "models", tmp_path / "cache")
    assert not (tmp_path / "models").exists()


def test_a_broken_wheel_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    with zipfile.ZipFile(wheels / mf.WHEEL_NAME, "w") as zf:
        zf.writestr("mediapipe/__init__.py", "")
    with pytest.raises(ModelUnavailable, match="is not a usable mediapipe wheel"):
        ensure_models(tmp_path / "models", tmp_path)
