"""Locale negotiation and the messages the engine and the server say by themselves (en, de, es).

Negotiation walks a tag down to its language (``de-AT`` -> ``de``), then falls back to the scene's
default locale, so a customer always gets whole sentences in one language.
"""

from __future__ import annotations

from collections.abc import Iterable

from scenes.model import I18nText

ENGINE_LOCALES: tuple[str, ...] = ("en", "de", "es")

# Texts said without a scene's words. ``{product}`` is the product's localized name.
MESSAGES: dict[str, I18nText] = {
    "wrong_product": {
        "en": "That is not your {product}. Please point the camera at the {product}.",
        "de": "Das ist nicht Ihr {product}. Bitte richten Sie die Kamera auf den {product}.",
        "es": "Eso no es su {product}. Apunte la cámara al {product}.",
    },
    "point_camera": {
        "en": "Point the camera at the {product}.",
        "de": "Richten Sie die Kamera auf den {product}.",
        "es": "Apunte la cámara al {product}.",
    },
    "offer_help": {
        "en": "Need a hand? A support agent can take over from here.",
        "de": "Brauchen Sie Hilfe? Ein Support-Mitarbeiter kann hier übernehmen.",
        "es": "¿Necesita ayuda? Un agente de soporte puede continuar desde aquí.",
    },
    "offer_repeated": {
        "en": "We keep coming back to this step. Would you like to talk to a support agent?",
        "de": "Wir landen immer wieder bei diesem Schritt. Möchten Sie mit einem Support-Mitarbeiter sprechen?",
        "es": "Seguimos volviendo a este paso. ¿Quiere hablar con un agente de soporte?",
    },
    "offer_overdue": {
        "en": "This step is taking longer than usual. Would you like to talk to a support agent?",
        "de": "Dieser Schritt dauert länger als üblich. Möchten Sie mit einem Support-Mitarbeiter sprechen?",
        "es": "Este paso está tardando más de lo normal. ¿Quiere hablar con un agente de soporte?",
    },
    "handover": {
        "en": "A support agent will take over from here.",
        "de": "Ein Support-Mitarbeiter übernimmt ab hier.",
        "es": "Un agente de soporte continuará desde aquí.",
    },
    # The server's answers to the customer's own actions: Help pressed, a button of a step that is over.
    "help_requested": {
        "en": "A support agent has been asked to help you.",
        "de": "Ein Support-Mitarbeiter wurde gebeten, Ihnen zu helfen.",
        "es": "Se ha pedido a un agente de soporte que le ayude.",
    },
    "stale_step": {
        "en": "That was for an earlier step. Please follow the current one.",
        "de": "Das galt einem früheren Schritt. Bitte folgen Sie dem aktuellen.",
        "es": "Eso era para un paso anterior. Siga el paso actual, por favor.",
    },
    # Why the parts the current step watches cannot be read (the server's view hints). ``{part}`` is the
    # part's localized catalog label; ``led_part`` makes "Power" into "Power light".
    "move_closer": {
        "en": "Move the camera a little closer so the {part} can be read.",
        "de": "Gehen Sie mit der Kamera etwas näher heran, damit dieses Teil lesbar wird: {part}.",
        "es": "Acerque un poco la cámara para poder leer esta parte: {part}.",
    },
    "more_light": {
        "en": "It is too dark to see the device. Please turn on a light.",
        "de": "Es ist zu dunkel, um das Gerät zu erkennen. Bitte schalten Sie ein Licht ein.",
        "es": "Está demasiado oscuro para ver el dispositivo. Encienda una luz, por favor.",
    },
    "hold_steady": {
        "en": "Hold the camera still for a moment.",
        "de": "Halten Sie die Kamera einen Moment ruhig.",
        "es": "Mantenga la cámara quieta un momento.",
    },
    "hand_covering": {
        "en": "Your hand is covering the {part}. Please move it aside for a moment.",
        "de": "Ihre Hand verdeckt dieses Teil: {part}. Bitte nehmen Sie sie kurz zur Seite.",
        "es": "Su mano tapa esta parte: {part}. Apártela un momento, por favor.",
    },
    "part_covered": {
        "en": "Something is covering the {part}. Please clear the view.",
        "de": "Etwas verdeckt dieses Teil: {part}. Bitte machen Sie die Sicht frei.",
        "es": "Algo tapa esta parte: {part}. Despeje la vista, por favor.",
    },
    "turn_device": {
        "en": "Turn the device, or move around it, so the camera can see the {part}.",
        "de": "Drehen Sie das Gerät oder gehen Sie darum herum, damit die Kamera dieses Teil sieht: {part}.",
        "es": "Gire el dispositivo o muévase a su alrededor para que la cámara vea esta parte: {part}.",
    },
    "led_part": {
        "en": "{label} light",
        "de": "Leuchte „{label}“",
        "es": "luz «{label}»",
    },
}


def negotiate(requested: str | None, available: Iterable[str], default: str) -> str:
    """The best of ``available`` for ``requested``: exact tag, then shorter tags, then ``default``."""
    have = set(available)
    tag = (requested or "").strip().replace("_", "-")
    while tag:
        for candidate in have:
            if candidate.lower() == tag.lower():
                return candidate
        tag = tag.rpartition("-")[0]
    return default


def pick(text: I18nText, locale: str, default: str) -> str:
    """``text`` in ``locale`` (negotiated), else the default locale, else any text it has."""
    chosen = negotiate(locale, text, default)
    return text.get(chosen) or text.get(default) or next(iter(text.values()), "")


def message(code: str, locale: str, **values: str) -> str:
    """An engine message in ``locale`` (falling back to English), with ``values`` filled in."""
    return pick(MESSAGES[code], locale, "en").format(**values)
