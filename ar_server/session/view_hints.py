"""View hints: tell the customer why the parts the current step watches cannot be read. Pure: no I/O, no
clock; the caller passes time in seconds. One :class:`ViewHints` per session.

Rules:

1. The *watched* parts of a step are the parts named in its ``when`` conditions, in file order.
2. A watched part is *read* in a frame when vision names its state, it is visible, and it is at least as
   large as step verification needs (``vision.verification.VerificationConfig.min_size_px``). Otherwise
   the frame gives a *cause*, checked in this order:
   a. the frame is dark (``quality.luma < dark_luma``): ``more_light``, also when no product is in view
      (a dark room is the likeliest reason the device is not found);
   b. the frame is blurred (``quality.sharpness < blurred_sharpness``): ``hold_steady``;
   c. something is in the way or the part faces elsewhere, by the pipeline's ``reason``: ``hand`` ->
      ``hand_covering``; ``covered`` -> ``part_covered``; ``facing_away`` or ``behind_product`` ->
      ``turn_device``; ``out_of_frame`` and "no product in view" give no cause (the scene engine's
      ``point_camera`` notice covers them), nor does ``not_learnt`` (no installed network reads the part);
   d. the part, read or not, is smaller than verification needs (``size_px``): ``move_closer``. A part
      that small is often read "unsure" too, and coming closer is what helps;
   e. any other reason: ``too_small`` -> ``move_closer``; ``ambiguous_pose`` or ``unsure`` -> ``hold_steady``.
3. A watched part is *blocked* when it has not been read for ``persist_s`` (since it became watched, or
   since its last read) and the current frame gives a cause. A passing hand or a frame of blur says
   nothing.
4. One hint per frame at most: the first blocked part (rule 1's order) whose code was not hinted in the
   last ``interval_s``. ``turn_device`` and ``move_closer`` are about where the customer stands, so they
   are given only when every watched part is blocked: while the customer reads one part (the port being
   plugged), another one facing away or far off is not a reason to move.
5. Before any scene runs, the watched parts are the unknown parts of the recognised product's triggers that
   what has been read still leaves open (:func:`trigger_parts`: the power light read off leaves "no power"
   open, so its power socket is watched; all lights green leave nothing to look for), and each blocked one
   is a reason to move by itself: no scene can start while the part that shows its fault goes unseen (a
   power socket on the back, with the front's lights read all along). ``part_covered`` is not given then:
   a part inside the device (paper behind a closed cover) is no reason to open it before a scene says so.
   And ``turn_device`` and ``move_closer`` share one ``interval_s`` then: a customer walking round to the
   back is not called to a light on the front.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from product_models.catalog import Product
from scenes.conditions import evaluate, leaves
from scenes.i18n import message, pick
from scenes.model import Scene, Step

if TYPE_CHECKING:
    from vision.types import Observation

HINT_CODES: tuple[str, ...] = ("move_closer", "more_light", "hold_steady", "hand_covering", "part_covered",
                               "turn_device")

# Rules 2c and 2e: the pipeline's reasons (vision.types.UNREADABLE_REASONS) -> hint codes.
BLOCKING_HINTS: dict[str, str | None] = {
    "hand": "hand_covering",
    "covered": "part_covered",
    "facing_away": "turn_device",
    "behind_product": "turn_device",
    "out_of_frame": None,
    "not_learnt": None,  # no installed network reads the part: nothing the customer does would help
}
WHERE_TO_STAND = frozenset({"turn_device", "move_closer"})  # rule 4
UNSURE_HINTS: dict[str, str] = {
    "too_small": "move_closer",
    "ambiguous_pose": "hold_steady",
    "unsure": "hold_steady",
}


@dataclass(frozen=True)
class ViewHintConfig:
    """Tuning of the hints; each value with its reason."""

    # A hand plugging a cable, or a frame of blur, is normal for a moment: say nothing for that long.
    persist_s: float = 1.5
    # Often enough to help, rarely enough not to nag (the engine's camera notices wait 15 s).
    interval_s: float = 12.0
    # Mean brightness 0..255 below which the frame is too dark to read LEDs and ports; a lit room is far
    # above it.
    dark_luma: float = 50.0
    # Variance of the Laplacian below which the frame is blurred: well under what a sharp frame scores,
    # above a frame smeared by several pixels of motion.
    blurred_sharpness: float = 25.0


@dataclass(frozen=True)
class ViewHint:
    code: str  # one of HINT_CODES
    part: str | None  # the watched part it is about (None for ``more_light`` without a product in view)


def watched_parts(step: Step) -> tuple[str, ...]:
    """Rule 1: the parts named in ``step``'s ``when`` conditions, in file order, each once."""
    return tuple(dict.fromkeys(leaf.part for expectation in step.when for leaf in leaves(expectation.condition)))


def trigger_parts(scenes: Iterable[Scene], product_id: str, known: Mapping[str, str]) -> tuple[str, ...]:
    """Rule 5: the parts not in ``known`` (part -> state read) of the triggers of ``product_id``'s scenes that
    ``known`` neither makes hold nor rules out, in library order, each once."""
    return tuple(dict.fromkeys(leaf.part for scene in scenes if scene.product == product_id
                               for trigger in scene.triggers if evaluate(trigger.condition, known) is None
                               for leaf in leaves(trigger.condition) if leaf.part not in known))


def hint_text(hint: ViewHint, product: Product, locale: str) -> str:
    """The hint in ``locale`` (English when the catalog has no such text), naming the part by its label."""
    label = ""
    if hint.part is not None and product.has_part(hint.part):
        part = product.part(hint.part)
        label = pick(part.label, locale, "en") if part.label else hint.part
        if part.kind == "led":
            label = message("led_part", locale, label=label)
    return message(hint.code, locale, part=label, product=pick(product.name, locale, "en"))


class ViewHints:
    """Decides, frame by frame, whether to say why the watched parts cannot be read (module docstring)."""

    def __init__(self, verify_min_size_px: float, config: ViewHintConfig | None = None) -> None:
        self.config = config or ViewHintConfig()
        self.verify_min_size_px = verify_min_size_px  # rule 2: read, but too small to verify
        self._unread_since: dict[str, float] = {}
        self._last_sent: dict[str, float] = {}

    def update(self, now_s: float, watched: Sequence[str], obs: Observation, *,
               before_scene: bool = False) -> ViewHint | None:
        """One frame: ``obs`` is the frame's raw observation; ``before_scene``: ``watched`` are the triggers'
        parts (rule 5). Returns the hint to send, if any."""
        for part in [p for p in self._unread_since if p not in watched]:
            del self._unread_since[part]
        blocked: list[tuple[str, str]] = []
        for part in watched:
            since = self._unread_since.setdefault(part, now_s)
            cause = self._cause(part, obs)
            if cause == "":
                self._unread_since[part] = now_s  # read (rule 2)
            elif cause is not None and now_s - since >= self.config.persist_s:
                blocked.append((part, cause))
        for part, code in blocked:
            if before_scene and code == "part_covered":
                continue
            if code in WHERE_TO_STAND and len(blocked) < len(watched) and not before_scene:
                continue
            key = "where_to_stand" if before_scene and code in WHERE_TO_STAND else code
            last = self._last_sent.get(key)
            if last is not None and now_s - last < self.config.interval_s:
                continue
            self._last_sent[key] = now_s
            return ViewHint(code, part if obs.product_id is not None else None)
        return None

    def _cause(self, part: str, obs: Observation) -> str | None:
        """Rule 2: "" when ``part`` was read in ``obs``; else its hint code, or None when there is none."""
        cfg = self.config
        raw = obs.parts.get(part) if obs.product_id is not None else None
        if raw is not None and raw.state is not None and raw.visible and raw.size_px >= self.verify_min_size_px:
            return ""
        quality = obs.quality
        if quality is not None and quality.luma < cfg.dark_luma:
            return "more_light"
        if raw is None:
            return None
        if quality is not None and quality.sharpness < cfg.blurred_sharpness:
            return "hold_steady"
        if raw.reason in BLOCKING_HINTS:
            return BLOCKING_HINTS[raw.reason]
        if raw.size_px < self.verify_min_size_px:
            return "move_closer"
        return UNSURE_HINTS.get(raw.reason or "")
