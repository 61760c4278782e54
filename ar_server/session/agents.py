"""What a session core needs for people from support: the customer-facing texts, and moving an engine to a
step an agent chose. Pure: no I/O, no clock of its own.
"""

from __future__ import annotations

from scenes import Effect, Engine
from scenes.i18n import pick

# The texts the session sends about agents, per locale (the scene engine's MESSAGES hold only its own).
AGENT_TEXTS: dict[str, dict[str, str]] = {
    "agent_queued": {
        "en": "A person from support will join you shortly. Keep the camera on the device.",
        "de": "Gleich meldet sich eine Person vom Support. Halten Sie die Kamera weiter auf das Gerät.",
        "es": "En breve se unirá una persona de soporte. Mantenga la cámara apuntando al dispositivo.",
    },
}
AGENT_COLOR = "#3fa9f5"  # an agent's pointing: blue, apart from the scenes' amber and green


def agent_text(code: str, locale: str) -> str:
    return pick(AGENT_TEXTS[code], locale, "en")


def move_engine(engine: Engine, step_id: str, now: float) -> list[Effect]:
    """Enter ``step_id`` as if the customer had chosen it (the step left counts as done by the user), and
    return the engine's effects. Raises ``IllegalEventError`` for a step the scene lacks or a scene not
    running (``Engine.jump_to``, rule 11 of scenes/engine.py)."""
    return engine.jump_to(step_id, now)
