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
   unknown with that reason.
5. Where the weights include the occlusion network (``part-occlusion.onnx``: the same small CNN, trained to
   say only whether each part is visible, under a hand, covered, hidden by another part of the device (paper
   inside it) or, for a part of a row of look-alikes, ``off_part`` from its patch), it sees the same patches. A
   part it finds under a hand, covered or hidden is unknown with that reason whatever the state network read:
   a finger over an empty port must never read "plugged". LEDs are asked only whether they are absent (see
   ``_classify``).
6. A row of look-alikes (LEDs, ports) with a part ``off_part`` from its patch was read under a pose one part off
   along the row: :meth:`PartReader._check_rows` reads the row again shifted back, or makes it unknown.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

from product_models.camera import CameraIntrinsics, Pose
from product_models.catalog import EDGE_ON_DEG, Part, Product
from vision.errors import ModelUnavailable
from vision.led import classify_led
from vision.part_net import MODEL_NAME, OCCLUSION_MODEL_NAME, PartNet
from vision.part_patches import COVERED, HAND, HIDDEN, MIN_READABLE_PX, OFF_PART, ROW_KINDS, face_patch, row_spacing
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
OCCLUDERS = (HAND, COVERED, HIDDEN)  # the occlusion network's answers that overrule a state read (not for LEDs)
# A row's placement (as posed, or shifted one part along the row) wins when its parts' ``off_part`` probabilities
# sum to at least this much less than every other placement's: half a part's worth of evidence. Set a priori,
# not tuned: a shifted pose puts one whole part past the row's end (about 1.0), a bloomed LED half of one.
ROW_MARGIN = 0.5
# ... and a part's ``off_part`` is believed only when the part is at least this many pixels across. Smaller,
# its patch is a few pixels upsampled: on development seed 7400 every LED of 3-7 px that read ``off_part`` under
# a right pose (bloomed, tiny at a wide field of view) made its row unknown, 25 times in 800 frames, while
# every shifted row the check caught was ports of 8-22 px. A smaller part stays read as posed.
ROW_MIN_PX = 8.0

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
            else:  # no network reads it: nothing the customer does would help
                out.append(PartState(None, 0.0, True, p.uv, reason="not_learnt", size_px=size))
        if not batch:
            return out
        parts = [requests[i][0] for i in batch]
        verdicts = self._classify(product, parts, patches, [out[i].size_px for i in batch])
        for i, v in zip(batch, verdicts, strict=True):
            out[i] = _reading(v.label, v.prob, out[i].uv, out[i].size_px)
        self._check_rows(image, product, pose, camera, requests, dict(zip(batch, verdicts, strict=True)), out)
        return out

    def _classify(self, product: Product, parts: Sequence[Part], patches: Sequence[np.ndarray],
                  sizes: Sequence[float]) -> list[Verdict]:
        """Both networks' verdict on each part's patch: its state, or ``hand``, ``covered``, ``hidden`` or ``off_part``.

        The state network answers first. Where the occlusion network knows the part, it overrules: a part it
        finds under a hand, covered, or hidden by another part of the device is that, whatever the state
        network read (a finger over an empty port must never read "plugged"), and a part of a row it finds
        ``off_part`` is not under its patch at all.
        LEDs are asked only about ``off_part``: a finger over an LED reads "off" or unsure, never lit in its
        healthy colour, and a bloomed LED's halo looks like a covering to the occlusion network (led_bloom
        0.99 -> 0.80 when it was asked). ``off_part`` is believed only of a part ``ROW_MIN_PX`` or more across
        (``sizes``, pixels); a smaller one is read by the state network as it is."""
        assert self.net is not None
        keys = [(product.id, part.name) for part in parts]
        found = self.net.probabilities(patches, keys)
        believed = [size >= ROW_MIN_PX for size in sizes]
        verdicts = [_verdict(p, sure) for p, sure in zip(found, believed, strict=True)]
        if self.occlusion is None:
            return verdicts
        asked = [k for k, key in enumerate(keys) if self.occlusion.handles(*key)]
        seen = self.occlusion.probabilities([patches[k] for k in asked], [keys[k] for k in asked])
        for k, probs in zip(asked, seen, strict=True):
            label = max(probs, key=probs.__getitem__)
            absent = max(verdicts[k].absent, probs.get(OFF_PART, 0.0) if believed[k] else 0.0)
            if (label == OFF_PART and believed[k]) or (label in OCCLUDERS and parts[k].kind != "led"):
                verdicts[k] = Verdict(label, 1.0, absent)
            else:
                verdicts[k] = verdicts[k]._replace(absent=absent)
        return verdicts

    def _check_rows(self, image: np.ndarray, product: Product, pose: Pose, camera: CameraIntrinsics,
                    requests: Sequence[Request], verdicts: dict[int, Verdict], out: list[PartState]) -> None:
        """Resolve a pose that is off by one part along a row of look-alikes (LEDs, ports). Such a pose fits
        the keypoints well, and every patch of the row then shows its neighbour: only where a patch falls
        past the row's end, on bare body, does it give itself away (``off_part``).

        Where a part of a row reads ``off_part``, the row is read again shifted by that part's spacing to its
        nearest look-alike, either way (a row need not be evenly spaced: the router's power socket sits twice
        as far from the WAN port as the LAN ports from each other). Each placement of the row scores the sum
        of its parts' ``off_part`` probabilities, and the lowest wins by ``ROW_MARGIN``: a shift is taken with
        its readings; the pose as it is keeps its readings, but not those of the parts that read ``off_part``
        (a bloomed or tiny LED, which the shifts, each with a part past the row's end, do not explain). With
        no clear winner every part of the row is unknown (``ambiguous_pose``). In place on ``out``."""
        rows: dict[tuple[str, str], list[int]] = {}
        for i in verdicts:
            part = requests[i][0]
            if part.kind in ROW_KINDS:
                rows.setdefault((part.kind, part.facing), []).append(i)
        for members in rows.values():
            lost = [i for i in members if verdicts[i].label == OFF_PART]
            if not lost:
                continue
            shifts = []
            for i in lost:
                row = row_spacing(product, requests[i][0])
                if row is not None:
                    shifts += [sign * row[1] * row[0] for sign in (-1.0, 1.0)]
            placements: list[tuple[float, list[PartState] | None]] = [(sum(verdicts[i].absent for i in members), None)]
            for shift in _distinct(shifts):
                cut = [face_patch(image, product, requests[i][0], pose, camera, requests[i][1], offset_m=shift)
                       for i in members]
                if any(c is None for c in cut):
                    continue
                read = self._classify(product, [requests[i][0] for i in members], cut,  # type: ignore[arg-type]
                                      [out[i].size_px for i in members])
                placements.append((sum(v.absent for v in read), [_reading(v.label, v.prob, out[i].uv, out[i].size_px)
                                                                  for i, v in zip(members, read, strict=True)]))
            placements.sort(key=lambda p: p[0])
            best, runner_up = placements[0], placements[1] if len(placements) > 1 else (math.inf, None)
            if best[0] + ROW_MARGIN > runner_up[0]:
                fixed = [PartState(None, 0.0, True, out[i].uv, reason="ambiguous_pose", size_px=out[i].size_px)
                         for i in members]
            else:
                fixed = best[1] if best[1] is not None else [out[i] for i in members]
            for k, i in enumerate(members):
                out[i] = fixed[k]


def _verdict(probs: dict[str, float], absent_believed: bool) -> Verdict:
    """The state network's answer for one patch. A network that knows ``off_part`` (one trained with every
    class) may say it, but for a part too small for it to be believed its best other class stands."""
    absent = probs.get(OFF_PART, 0.0) if absent_believed else 0.0
    label, prob = max(((c, p) for c, p in probs.items() if absent_believed or c != OFF_PART), key=lambda kv: kv[1])
    return Verdict(label, prob, absent)


class Verdict(NamedTuple):
    """What :meth:`PartReader._classify` makes of one patch: a state or an abstaining class, its probability,
    and the probability that the part is not under the patch at all (0 where no network knows ``off_part``)."""

    label: str
    prob: float
    absent: float


def _distinct(shifts: Sequence[np.ndarray]) -> list[np.ndarray]:
    """``shifts`` without repeats (two parts of a row share their spacing), in order."""
    kept: list[np.ndarray] = []
    for shift in shifts:
        if all(np.linalg.norm(shift - k) > 1e-6 for k in kept):
            kept.append(shift)
    return kept


def _reading(label: str | None, prob: float, uv: tuple[float, float] | None, size: float) -> PartState:
    """The network's (or the colour reader's) answer as a PartState: a state, or unknown with why."""
    if label == HIDDEN:  # the part's place faces the camera but another part covers it (paper behind a cover)
        return PartState(None, 0.0, False, uv, reason="covered", size_px=size)
    if label == HAND:
        return PartState(None, 0.0, False, uv, reason="hand", size_px=size)
    if label == COVERED:
        return PartState(None, 0.0, False, uv, reason="covered", size_px=size)
    if label == OFF_PART:  # resolved for the whole row by PartReader._check_rows
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
