"""Locale negotiation and the engine's own messages (en, de, es).

Negotiation walks a tag down to its language (``de-AT`` -> ``de``), then falls back to the scene's
default locale, so a customer always gets whole sentences in one language.
"""

from __future__ import annotations

from collections.abc import Iterable

from scenes.model import I18nText

ENGINE_LOCALES: tuple[str, ...] = ("en", "de", "es")

# Texts the engine says by itself. ``{product}`` is the product's localized name.
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
