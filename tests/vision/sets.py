"""Model sets for tests: the shipped detector cut to one product's class, beside the shipped networks."""

from __future__ import annotations

import ast
import os
from pathlib import Path

import numpy as np

from vision.detector import WEIGHTS_DIR

SHARED = ("keypoints.onnx", "part-states.onnx", "part-occlusion.onnx", "product-appearance.onnx")


def one_class_detector(src: Path, product_id: str, out: Path, name: str | None = None) -> None:
    """``src``'s ONNX detector with only ``product_id``'s class row in its output, named ``name`` (default
    ``product_id``) in its class names."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(src))
    meta = {p.key: p for p in model.metadata_props}
    names = ast.literal_eval(meta["names"].value)
    cls = next(i for i, n in names.items() if n == product_id)
    rows = model.graph.output[0].type.tensor_type.shape.dim[1].dim_value  # 4 box + classes + keypoints
    keep = [0, 1, 2, 3, 4 + cls, *range(4 + len(names), rows)]
    graph = model.graph
    old = graph.output[0].name
    cut = old + "_one_class"
    for node in graph.node:  # the graph's last node now writes an inner tensor, which the Gather reads
        node.output[:] = [cut if o == old else o for o in node.output]
    graph.initializer.append(numpy_helper.from_array(np.array(keep, np.int64), "one_class_rows"))
    graph.node.append(helper.make_node("Gather", [cut, "one_class_rows"], [old], axis=1))
    graph.output[0].type.tensor_type.shape.dim[1].dim_value = len(keep)
    meta["names"].value = repr({0: name or product_id})
    onnx.save(model, str(out / "fixlens-pose.onnx"))


def make_set(folder: Path, product_id: str, name: str | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    one_class_detector(WEIGHTS_DIR / "fixlens-pose.onnx", product_id, folder, name)
    for file in SHARED:
        if (WEIGHTS_DIR / file).is_file():
            os.symlink(WEIGHTS_DIR / file, folder / file)
    return folder
