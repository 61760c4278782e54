"""Synthetic LED pictures for tests: a glowing blob with an overexposed centre, as a phone camera sees a
lit LED, then a JPEG round trip at phone quality (4:2:0 chroma subsampling smears the colour)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vision.decode import decode_jpeg, encode_jpeg

COLOURS_BGR: dict[str, tuple[int, int, int]] = {
    "red": (30, 30, 255), "amber": (0, 160, 255), "green": (70, 255, 40), "blue": (255, 80, 20),
}


def housing(height: int = 240, width: int = 320, grey: int = 45, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(np.full((height, width, 3), grey, np.float32) + rng.normal(0, 3, (height, width, 3)), 0, 255)


def draw_led(image: np.ndarray, uv: tuple[float, float], diameter: float, state: str) -> None:
    """Paint an LED in ``state`` ("off" or a colour of COLOURS_BGR) into a float32 BGR image, in place."""
    h, w = image.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w]
    r2 = ((xx - uv[0]) ** 2 + (yy - uv[1]) ** 2) / (diameter / 2.0) ** 2
    if state == "off":  # a dark lens, a little lighter than the housing
        image[r2 < 1.0] = image[r2 < 1.0] * 0.7 + 20.0
        return
    glow = np.exp(-r2 * 0.7)[..., None]
    core = np.exp(-r2 * 2.0)[..., None]
    image[:] = image * (1 - glow) + np.array(COLOURS_BGR[state], np.float32) * glow
    image[:] = image * (1 - 0.6 * core) + 255.0 * 0.6 * core


def as_camera_frame(image: np.ndarray, quality: int = 75) -> np.ndarray:
    return decode_jpeg(encode_jpeg(np.clip(image, 0, 255).astype(np.uint8), quality))


def constant_network(path: Path, image_input: tuple[str, int], logits: list[float], props: dict[str, str],
                     extra_inputs: tuple[str, ...] = ()) -> Path:
    """An ONNX file whose ``logits`` output is always ``logits`` for each row of its image input (``(name,
    side)``: (n, 3, side, side) float); ``extra_inputs`` are int64 (n,) inputs it declares and ignores, and
    ``props`` its metadata. A network's wiring is then tested apart from what a trained one sees."""
    import onnx
    from onnx import TensorProto, helper

    name, side = image_input
    graph = helper.make_graph(
        # logits = sum(image) * 0 + bias, shaped (n, len(logits))
        [helper.make_node("ReduceSum", [name, "axes"], ["total"], keepdims=0),
         helper.make_node("Unsqueeze", ["total", "one"], ["column"]),
         helper.make_node("Mul", ["column", "zero"], ["nothing"]),
         helper.make_node("Add", ["nothing", "bias"], ["logits"])],
        "constant", [helper.make_tensor_value_info(name, TensorProto.FLOAT, ["n", 3, side, side]),
                     *(helper.make_tensor_value_info(extra, TensorProto.INT64, ["n"]) for extra in extra_inputs)],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["n", len(logits)])],
        [helper.make_tensor("axes", TensorProto.INT64, [3], [1, 2, 3]),
         helper.make_tensor("one", TensorProto.INT64, [1], [1]),
         helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0]),
         helper.make_tensor("bias", TensorProto.FLOAT, [len(logits)], logits)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    helper.set_model_props(model, props)
    onnx.save(model, path)
    return path
