from __future__ import annotations

import msgpack
import numpy as np
import pytest

from product_models.camera import Pose
from vision.errors import VisionError
from vision.types import Detections, Hand, Observation, PartState


def _good(**over: object) -> dict[str, object]:
    kw: dict[str, object] = {"xyxy": [[0, 0, 10, 10], [5, 5, 20, 30]], "confidence": [0.9, 0.4],
                             "class_id": [0, 1], "keypoints": np.zeros((2, 3, 2)), "keypoint_conf": np.ones((2, 3))}
    kw.update(over)
    return kw


def test_detections_coerce_dtypes_and_select() -> None:
    det = Detections(**_good())
    assert det.xyxy.dtype == np.float32 and det.class_id.dtype == np.int64 and len(det) == 2
    assert len(det.select(det.confidence > 0.5)) == 1
    one = det.select(-1)
    assert len(one) == 1 and one.class_id[0] == 1
    assert len(Detections.empty(10)) == 0 and Detections.empty(10).keypoints.shape == (0, 10, 2)


@pytest.mark.parametrize(("over", "message"), [
    ({"xyxy": [[0, 0, 10]]}, r"xyxy: expected shape \(n, 4\), got \(1, 3\)"),
    ({"confidence": [0.9]}, r"confidence: expected shape \(2,\), got \(1,\)"),
    ({"class_id": [[0, 1]]}, r"class_id: expected shape \(2,\), got \(1, 2\)"),
    ({"confidence": [0.9, 1.5]}, r"confidence: expected values in \[0, 1\], got 0.9..1.5"),
    ({"xyxy": [[10, 0, 0, 10], [0, 0, 1, 1]]}, "expected x2 >= x1"),
    ({"xyxy": [[np.nan, 0, 1, 1], [0, 0, 1, 1]]}, "expected finite pixel coordinates"),
    ({"keypoint_conf": None}, "expected both or neither"),
    ({"keypoint_conf": np.ones((2, 4))}, r"keypoint_conf: expected shape \(2, 3\), got \(2, 4\)"),
    ({"keypoints": np.zeros((2, 3, 3))}, r"keypoints: expected shape \(2, n, 2\), got \(2, 3, 3\)"),
    ({"xyxy": "abc"}, "xyxy: expected an array of float32, got str"),
])
def test_detections_reject_bad_arrays(over: dict[str, object], message: str) -> None:
    with pytest.raises(VisionError, match=message):
        Detections(**_good(**over))


def test_observation_to_dict_is_plain_and_msgpack_round_trips() -> None:
    obs = Observation(
        seq=7, ts=12.5, product_id="router_ax1800", product_confidence=np.float32(0.8),
        box=(1.0, 2.0, 3.0, 4.0), pose=Pose.orbit(10, 30, 0.5), reprojection_error_px=np.float64(0.7),
        parts={"led_power": PartState("green", 0.9, True, (np.float32(3.0), 4.0), blinking=True)},
        hands=(Hand("Right", 0.9, np.zeros((21, 2), np.float32), {"index": (1.0, 2.0)}, "led_power", 3.5),),
        timing_ms={"decode": np.float64(2.1)})
    d = obs.to_dict()
    packed = msgpack.packb(d)  # raises on numpy scalars or arrays
    back = msgpack.unpackb(packed)
    assert back["seq"] == 7 and back["product"] == "router_ax1800"
    assert np.allclose(np.array(back["pose"]["R"]), obs.pose.R) and len(back["pose"]["t"]) == 3
    assert back["parts"]["led_power"] == {"state": "green", "confidence": 0.9, "visible": True,
                                          "uv": [3.0, 4.0], "blinking": True, "reason": None}
    assert back["hands"][0]["nearest_part"] == "led_power"
    assert Observation(seq=1, ts=0.0).to_dict()["pose"] is None
