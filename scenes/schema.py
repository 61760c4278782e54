"""JSON Schema (draft-07) of the scene format, for editors (VS Code YAML ``yaml.schemas``) and CI.

The schema checks shape only: which fields exist and their types. Names that depend on the catalog
(parts, states, accepted actions) and the step graph are checked by ``fixlens scenes validate``.
Draft-07 is used because editor YAML plugins support it best.
"""

from __future__ import annotations

from typing import Any

from product_models.catalog import ACTIONS
from scenes.model import ARROW_DIRECTIONS, NAMED_COLORS, OUTCOMES
from scenes.reader import COLOR, ID, LOCALE

SCHEMA_ID = "https://fixlens.example/schemas/scene.schema.json"

_REF = {"$ref": "#/definitions/condition"}


def _condition_shapes(extra: dict[str, Any], required: list[str]) -> list[dict[str, Any]]:
    """The five condition forms, each with ``extra`` sibling fields (goto, hold, reason, ...)."""
    heads: list[tuple[dict[str, Any], list[str]]] = [
        ({"part": {"$ref": "#/definitions/id"}, "is": {"$ref": "#/definitions/id"}}, ["part", "is"]),
        ({"part": {"$ref": "#/definitions/id"},
          "in": {"type": "array", "minItems": 1, "items": {"$ref": "#/definitions/id"}}}, ["part", "in"]),
        ({"all": {"type": "array", "minItems": 1, "items": _REF}}, ["all"]),
        ({"any": {"type": "array", "minItems": 1, "items": _REF}}, ["any"]),
        ({"not": _REF}, ["not"]),
    ]
    return [{"type": "object", "properties": {**props, **extra}, "required": req + required,
             "additionalProperties": False} for props, req in heads]


def scene_schema() -> dict[str, Any]:
    """The JSON Schema of one scene file, as a plain dict."""
    i18n = {"$ref": "#/definitions/i18n"}
    seconds = {"type": "number", "minimum": 0}
    step_ref = {"$ref": "#/definitions/id"}
    return {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "$id": SCHEMA_ID,
        "title": "Fixlens troubleshooting scene",
        "type": "object",
        "required": ["id", "product", "title", "start", "steps"],
        "additionalProperties": False,
        "properties": {
            "id": {"$ref": "#/definitions/id", "description": "Scene id, unique in the library."},
            "product": {"$ref": "#/definitions/id", "description": "Catalog product id, e.g. router_ax1800."},
            "title": i18n,
            "description": i18n,
            "default_locale": {"type": "string", "pattern": LOCALE.pattern, "default": "en"},
            "triggers": {"type": "array", "items": {"$ref": "#/definitions/trigger"}},
            "start": {**step_ref, "description": "Id of the first step."},
            "steps": {"type": "object", "minProperties": 1,
                      "propertyNames": {"pattern": ID.pattern},
                      "additionalProperties": {"$ref": "#/definitions/step"}},
        },
        "definitions": {
            "id": {"type": "string", "pattern": ID.pattern},
            "i18n": {"oneOf": [
                {"type": "string", "minLength": 1},
                {"type": "object", "minProperties": 1, "propertyNames": {"pattern": LOCALE.pattern},
                 "additionalProperties": {"type": "string", "minLength": 1}},
            ]},
            "condition": {"oneOf": _condition_shapes({}, [])},
            "trigger": {"oneOf": _condition_shapes({"reason": i18n}, ["reason"])},
            "expectation": {"oneOf": _condition_shapes(
                {"goto": step_ref, "hold": {**seconds, "description": "Seconds the condition must hold."},
                 "reason": i18n}, ["goto"])},
            "overlay": {"oneOf": [
                _overlay("highlight", {}, []),
                _overlay("arrow", {"direction": {"enum": list(ARROW_DIRECTIONS)}}, []),
                _overlay("label", {"text": i18n}, ["text"]),
                _overlay("animate", {"action": {"enum": list(ACTIONS)}}, ["action"]),
            ]},
            "choice": {"type": "object", "required": ["id", "label", "goto"], "additionalProperties": False,
                       "properties": {"id": {"$ref": "#/definitions/id"}, "label": i18n, "goto": step_ref}},
            "timeout": {"type": "object", "required": ["after"], "additionalProperties": False,
                        "properties": {"after": {"type": "number", "exclusiveMinimum": 0}, "goto": step_ref,
                                       "escalate": {"type": "boolean"}, "reason": i18n}},
            "step": {
                "type": "object", "required": ["text"], "additionalProperties": False,
                "properties": {
                    "text": i18n,
                    "overlays": {"type": "array", "items": {"$ref": "#/definitions/overlay"}},
                    "when": {"type": "array", "items": {"$ref": "#/definitions/expectation"}},
                    "choices": {"type": "array", "items": {"$ref": "#/definitions/choice"}},
                    "on_timeout": {"$ref": "#/definitions/timeout"},
                    "expect_s": {"type": "number", "exclusiveMinimum": 0},
                    "done_goto": step_ref,
                    "outcome": {"enum": list(OUTCOMES)},
                },
            },
        },
    }


def _overlay(kind: str, params: dict[str, Any], required: list[str]) -> dict[str, Any]:
    color = {"anyOf": [{"enum": list(NAMED_COLORS)}, {"type": "string", "pattern": COLOR.pattern}]}
    return {"type": "object", "required": ["kind", "part", *required], "additionalProperties": False,
            "properties": {"kind": {"const": kind}, "part": {"$ref": "#/definitions/id"}, "color": color,
                           **params}}
