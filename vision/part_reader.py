"""Every part's state in one frame, once the pose is known: :class:`PartReader`.

Rules:
1. Each part with states is projected with the pose (:mod:`vision.parts`). A part that cannot be read from
   this view is unknown with the reason (:data:`vision.types.UNREADABLE_REASONS`): out of the frame, facing
   away, behind the product's own body, or too small. The reader never guesses.
2. A readable part's face is rectified into a patch (:mod:`vision.part_patches`) and the part-state network
   (:mod:`vision.part_net`) reads every part of the frame in one batch. Without the network (or for a part
   it does not know) LEDs are read by colour (:mod:`vision.led`) and other parts report unknown.
3. Parts that ride on nothing (trays and covers at rest) are read first; then parts attached to them, placed
   with the state just read for their carrier. A carrier that could not be read (a tray's front seen
   edge-on from above) puts its attached part in each place it can, and the most confident reading wins.
4. A network answer under ``READ_MIN_CONF``, or one of its abstaining classes (hand, covered, hidden), is
   unknown with that reason; a row of look-alikes whose end reads ``absent`` is resolved by
   :meth:`PartReader._check_rows`.
5. Where the weights include the occlusion network (``part-occlusion.onnx``: the same small CNN, trained to
   say only whether each part is visible, under a hand, or covered), it sees the same patches, and a part it
   finds under a hand or covered is unknown with that reason whatever the state network read: a finger over
   an empty port must never read "plugged". LEDs are left to the state network (see ``_read_parts``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from product_models.camera import CameraIntrinsics, Pose
from product_models.catalog import EDGE_ON_DEG, Part, Product
from vision.errors import ModelUnavailable
from vision.led import classify_led
from vision.part_net import MODEL_NAME, OCCLUSION_MODEL_NAME, PartNet
from vision.part_patches import ABSENT, COVERED, HAND, HIDDEN, MIN_READABLE_PX, ROW_KINDS, face_patch, row_spacing
from vision.parts import ProjectedPart, behind_body, project_parts, visible_in_some_state
from vision.types import PartState

# A part is read when the estimated pose shows it facing the camera within READ_ANGLE_DEG and its image box
# at least READ_MIN_PX on its larger side (ProjectedPart.extent_px, the ground truth's own measure): a little
# past the readability rule (EDGE_ON_DEG, MIN_READABLE_PX), because the pose is
# itself a few degrees and a few percent off, and a part on the edge is better read than dropped.
READ_ANGLE_DEG = EDGE_ON_DEG + 5.0
READ_MIN_PX = 0.9 * MIN_READABLE_PX
# A reading the part-state network gives less than this probability is a guess (with two to four states, a
# coin flip is 0.25-0.5): the part is reported unknown ("unsure") instead.
READ_MIN_CONF = 0.5

# (part, place of its carrier, the part projected at rest or None): one reading asked of the reader
Request = tuple[Part, dict[str, str], ProjectedPart | None]


class PartReader:
    """Owns the part-state network (None: LEDs by colour only) and the optional occlusion network, and reads
    parts with them."""

    def __init__(self, net: PartNet | None, occlusion: PartNet | None = None) -> None:
        self.net = net
        self.occlusion = occlusion

    @classmethod
    def from_weights(cls, weights_dir: str | Path) -> PartReader:
        """With ``weights_dir``'s part-state network, or without one when it is not installed; with its
        occlusion network when there is one."""
        occlusion = None
        if (Path(weights_dir) / OCCLUSION_MODEL_NAME).is_file():
            occlusion = PartNet(Path(weights_dir) / OCCLUSION_MODEL_NAME)
        try:
            return cls(PartNet(Path(weights_dir) / MODEL_NAME), occlusion)
        except ModelUnavailable:
            return cls(None)  # LEDs are still read by colour; other parts report unknown

    def read(self, image: np.ndarray, product: Product, pose: Pose,
             camera: CameraIntrinsics) -> dict[str, PartState]:
        """One :class:`PartState` per part with states."""
        # First parts that ride on nothing (trays and covers at rest), then parts attached to them, placed
        # with the state just read for their carrier. Each round is one batch through the part network.
        at_rest = project_parts(product, pose, camera, {}, READ_ANGLE_DEG)
        parts = product.stateful_parts()
        free = [p for p in parts if p.attached_to is None]
        out = dict(zip((p.name for p in free),
                       self._read_parts(image, product, pose, camera, [(p, {}, at_rest[p.name]) for p in free]),
                       strict=True))
        states = {name: r.state for name, r in out.items() if r.state is not None}
        requests: list[Request] = []
        for part in (p for p in parts if p.attached_to is not None):
            carrier = product.part(part.attached_to)  # type: ignore[arg-type]
            # A carrier that could not be read (a tray's front seen edge-on from above): try the attached
            # part in each place the carrier can put it, and keep the most confident reading.
            places = [states[carrier.name]] if carrier.name in states else list(carrier.states)
            requests += [(part, {carrier.name: s}, None) for s in places]
        readings = self._read_parts(image, product, pose, camera, requests)
        for (part, _place, _rest), reading in zip(requests, readings, strict=True):
            best = out.get(part.name)
            if best is None or (reading.state is not None, reading.confidence) > (best.state is not None,
                                                                                  best.confidence):
                out[part.name] = reading
        return {p.name: out[p.name] for p in parts}

    def _read_parts(self, image: np.ndarray, product: Product, pose: Pose, camera: CameraIntrinsics,
                    requests: Sequence[Request]) -> list[PartState]:
        """One reading per request, the network's in one batch."""
        out: list[PartState] = []
        batch: list[int] = []  # indices into ``out`` read by the network
        patches: list[np.ndarray] = []
        for part, place, rest in requests:
            p = visible_in_some_state(product, part, pose, camera, place, rest, READ_ANGLE_DEG)
            size = float(max(p.size_px))
            reason = unreadable(product, part, p, pose, camera, place)
            if reason is not None:  # say why, never guess
                out.append(PartState(None, 0.0, False, p.uv, reason=reason, size_px=size))
            elif self.net is not None and self.net.handles(product.id, part.name):
                patch = face_patch(image, product, part, pose, camera, place)
                out.append(PartState(None, 0.0, False, p.uv, reason="out_of_frame", size_px=size))
                if patch is not None:
                    batch.append(len(out) - 1)
                    patches.append(patch)
            elif part.kind == "led":
                reading = classify_led(image, p.uv, size, part.states)
                out.append(_reading(reading.state, reading.confidence, p.uv, size))
            else:
                out.append(PartState(None, 0.0, True, p.uv, reason="unsure", size_px=size))
        if not batch:
            return out
        assert self.net is not None
        keys = [(product.id, requests[i][0].name) for i in batch]
        labels = self.net.predict(patches, keys)
        for i, (label, prob) in zip(batch, labels, strict=True):
            out[i] = _reading(label, prob, out[i].uv, out[i].size_px)
        self._check_rows(image, product, pose, camera, requests, batch, labels, out)
        if self.occlusion is not None:
            # LEDs are not checked: a finger over an LED reads it off or unsure, never lit in its healthy colour,
            # and a bloomed LED's halo looks like a covering to the occlusion network (led_bloom 0.99 -> 0.80).
            known = [k for k, key in enumerate(keys)
                     if self.occlusion.handles(*key) and requests[batch[k]][0].kind != "led"]
            seen = self.occlusion.predict([patches[k] for k in known], [keys[k] for k in known])
            for k, (label, _prob) in zip(known, seen, strict=True):
                if label in (HAND, COVERED):
                    out[batch[k]] = _reading(label, 1.0, out[batch[k]].uv, out[batch[k]].size_px)
        return out

    def _check_rows(self, image: np.ndarray, product: Product, pose: Pose, camera: CameraIntrinsics,
                    requests: Sequence[Request], batch: list[int], labels: list[tuple[str, float]],
                    out: list[PartState]) -> None:
        """Resolve a pose that is off by one part along a row of look-alikes (LEDs, ports). Such a pose fits
        the keypoints well, and every patch of the row then shows its neighbour: only the row's end gives it
        away, where a patch shows bare body (``absent``). Where a part of a row reads ``absent``, the row is
        read again one spacing either way; a single shift under which every part is present is taken, and
        otherwise every part of the row is unknown (``ambiguous_pose``). In place on ``out``."""
        assert self.net is not None
        rows: dict[tuple[str, str], list[int]] = {}
        for i in batch:
            part = requests[i][0]
            if part.kind in ROW_KINDS:
                rows.setdefault((part.kind, part.facing), []).append(i)
        label_of = {i: label for i, (label, _prob) in zip(batch, labels, strict=True)}
        for members in rows.values():
            if not any(label_of[i] == ABSENT for i in members):
                continue
            spacing = row_spacing(product, requests[members[0]][0])
            fixed: list[list[PartState]] = []
            if spacing is not None:
                for sign in (-1.0, 1.0):
                    shift = sign * spacing[1] * spacing[0]
                    cut = [face_patch(image, product, requests[i][0], pose, camera, requests[i][1], offset_m=shift)
                           for i in members]
                    if any(c is None for c in cut):
                        continue
                    read = self.net.predict(cut, [(product.id, requests[i][0].name) for i in members])  # type: ignore[arg-type]
                    if all(label != ABSENT for label, _prob in read):
                        fixed.append([_reading(label, prob, out[i].uv, out[i].size_px)
                                      for i, (label, prob) in zip(members, read, strict=True)])
            for k, i in enumerate(members):
                out[i] = fixed[0][k] if len(fixed) == 1 else PartState(
                    None, 0.0, True, out[i].uv, reason="ambiguous_pose", size_px=out[i].size_px)


def _reading(label: str | None, prob: float, uv: tuple[float, float] | None, size: float) -> PartState:
    """The network's (or the colour reader's) answer as a PartState: a state, or unknown with why."""
    if label == HIDDEN:  # the part's place faces the camera but another part covers it (paper behind a cover)
        return PartState(None, 0.0, False, uv, reason="covered", size_px=size)
    if label == HAND:
        return PartState(None, 0.0, False, uv, reason="hand", size_px=size)
    if label == COVERED:
        return PartState(None, 0.0, False, uv, reason="covered", size_px=size)
    if label == ABSENT:  # resolved for the whole row by PartReader._check_rows
        return PartState(None, 0.0, True, uv, reason="ambiguous_pose", size_px=size)
    if label is None or prob < READ_MIN_CONF:
        return PartState(None, 0.0, True, uv, reason="unsure", size_px=size)
    return PartState(label, prob, True, uv, size_px=size)


def unreadable(product: Product, part: Part, p: ProjectedPart, pose: Pose, camera: CameraIntrinsics,
               place: dict[str, str]) -> str | None:
    """Why ``part`` (projected as ``p``) cannot be read from this view, or None when it can be tried."""
    u, v = p.uv
    if p.depth <= 0 or not (-0.5 <= u <= camera.width - 0.5 and -0.5 <= v <= camera.height - 0.5):
        return "out_of_frame"
    if not p.visible:
        return "facing_away"
    # Hidden by the product's own body in every place the part can be (an open cover seen from behind).
    cam = pose.camera_position
    places = [place, *({**place, part.name: s} for s in part.moves)] if part.moves else [place]
    if all(behind_body(product, product.anchor_at(part.name, pl), cam) for pl in places):
        return "behind_product"
    if p.extent_px < READ_MIN_PX:
        return "too_small"
    return None
