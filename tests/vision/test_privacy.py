from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from vision.errors import ModelUnavailable
from vision.model_files import ModelFiles
from vision.privacy import FaceBlurrer


def _photo(name: str) -> np.ndarray:
    """Real photos with faces that ship inside packages, as BGR."""
    if name == "grace_hopper":
        import matplotlib.cbook

        with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as f:
            return cv2.imdecode(np.frombuffer(f.read(), np.uint8), cv2.IMREAD_COLOR)
    from skimage import data

    image = getattr(data, name)()
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    return np.ascontiguousarray(image[:, :, ::-1])


def _sharpness(image: np.ndarray) -> float:
    return float(cv2.Laplacian(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), cv2.CV_64F).var())


@pytest.fixture(scope="module")
def blurrer(models: ModelFiles):
    with FaceBlurrer(models.face_model.parent) as b:
        yield b


@pytest.mark.parametrize("name", ["astronaut", "camera", "grace_hopper"])
def test_faces_are_blurred_and_nothing_else_changes(blurrer: FaceBlurrer, name: str) -> None:
    image = _photo(name)
    out, boxes = blurrer.blur(image)
    assert len(boxes) >= 1, f"no face found in {name}"
    outside = np.ones(image.shape[:2], bool)
    for x1, y1, x2, y2 in boxes:
        assert (x2 - x1) * (y2 - y1) < 0.5 * image.shape[0] * image.shape[1]  # a face, not the whole frame
        before, after = image[y1:y2, x1:x2], out[y1:y2, x1:x2]
        assert _sharpness(after) < 0.05 * _sharpness(before)
        outside[y1:y2, x1:x2] = False
    assert np.array_equal(out[outside], image[outside])
    assert out is not image and out.shape == image.shape


def test_no_face_no_change(blurrer: FaceBlurrer) -> None:
    from skimage import data

    bricks = cv2.cvtColor(data.brick(), cv2.COLOR_GRAY2BGR)
    out, boxes = blurrer.blur(bricks)
    assert len(boxes) == 0 and np.array_equal(out, bricks)


def test_missing_model_fails_closed(tmp_path: Path) -> None:
    with pytest.raises(ModelUnavailable, match=r"face_detection_short_range.tflite is missing; run `fixlens vision"):
        FaceBlurrer(tmp_path)
