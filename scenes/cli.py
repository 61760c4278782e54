"""``fixlens scenes ...``: validate, simulate, graph and print the schema of troubleshooting scenes."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from product_models.catalog import Catalog, default_catalog
from product_models.errors import CatalogError
from scenes.collection import SCENE_DIR_ENV, check_paths, find_scene
from scenes.errors import EventsFileError, SceneError, SceneValidationError


def register(sub: argparse._SubParsersAction) -> None:
    scenes = sub.add_parser("scenes", help="troubleshooting scenes: validate, simulate, graph, schema",
                            description="Author and check troubleshooting scenes (see docs/scenes.md).")
    ssub = scenes.add_subparsers(dest="scenes_command", metavar="ACTION", required=True)

    p = ssub.add_parser("validate", help="check scene files or folders against the format and the catalog",
                        description="Check scene files (or every *.yaml directly in a folder). Prints "
                                    "file:line:col: severity: message (at path). Exit 0 when there are no "
                                    "errors (warnings allowed), 1 otherwise.")
    p.add_argument("paths", nargs="+", metavar="PATH", help="scene file or folder of scenes")
    p.add_argument("--json", action="store_true", help="print a JSON list of {file,line,col,path,severity,message}")
    p.add_argument("--catalog", metavar="DIR", help="product catalog folder (default: the shipped catalog)")
    p.set_defaults(handler=_cmd_validate)

    p = ssub.add_parser("simulate", help="replay an events file through a scene and print the transcript",
                        description="Run SCENE (a library id or a scene file) against a YAML list of timed "
                                    "events and print what the customer would see.")
    p.add_argument("scene", metavar="SCENE", help="scene id from the library, or path to a scene file")
    p.add_argument("--events", required=True, metavar="FILE", help="YAML events file (see docs/scenes.md)")
    p.add_argument("--locale", default="en", help="customer locale, e.g. de-AT (default: en)")
    p.add_argument("--library", metavar="DIR", help=f"scene library folder (default: ${SCENE_DIR_ENV}, else the "
                                                    "shipped library)")
    p.add_argument("--tick", type=float, default=0.5, metavar="S", help="seconds between ticks (default 0.5)")
    p.set_defaults(handler=_cmd_simulate)

    p = ssub.add_parser("graph", help="draw the step graph of a scene (.dot, or .svg with Graphviz)",
                        description="Write the step graph of SCENE as Graphviz DOT (.dot) or SVG (.svg, "
                                    "needs the 'dot' program).")
    p.add_argument("scene", metavar="SCENE", help="scene id from the library, or path to a scene file")
    p.add_argument("-o", "--output", required=True, metavar="FILE", help="output file, .dot or .svg")
    p.add_argument("--locale", default=None, help="language of the labels (default: the scene's)")
    p.add_argument("--library", metavar="DIR", help=f"scene library folder (default: ${SCENE_DIR_ENV}, else the "
                                                    "shipped library)")
    p.set_defaults(handler=_cmd_graph)

    p = ssub.add_parser("schema", help="print the JSON Schema of the scene format",
                        description="Print the JSON Schema (draft-07) of a scene file, for editors and CI.")
    p.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of standard output")
    p.set_defaults(handler=_cmd_schema)


def _catalog(folder: str | None) -> Catalog:
    return Catalog.load(folder) if folder else default_catalog()


def _cmd_validate(args: argparse.Namespace) -> int:
    try:
        catalog = _catalog(args.catalog)
    except CatalogError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    scenes, issues = check_paths(args.paths, catalog)
    errors = sum(1 for i in issues if i.severity == "error")
    if args.json:
        print(json.dumps([i.to_dict() for i in issues], indent=2, ensure_ascii=False))
    else:
        for issue in issues:
            print(issue)
        warnings = len(issues) - errors
        print(f"{len(scenes)} scene(s) valid, {errors} error(s), {warnings} warning(s)", file=sys.stderr)
    return 1 if errors else 0


def _cmd_simulate(args: argparse.Namespace) -> int:
    from scenes.simulate import load_events, simulate

    try:
        catalog = default_catalog()
        scene = find_scene(args.scene, args.library, catalog)
        events = load_events(args.events, scene, catalog)
        transcript = simulate(scene, catalog.get(scene.product), events, args.locale, tick_s=args.tick)
    except (SceneValidationError, EventsFileError) as exc:
        for issue in exc.issues:
            print(issue, file=sys.stderr)
        return 1
    except (SceneError, CatalogError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(transcript.text(), end="")
    return 0


def _cmd_graph(args: argparse.Namespace) -> int:
    from scenes.graph import write_graph

    try:
        scene = find_scene(args.scene, args.library)
        out = write_graph(scene, args.output, args.locale)
    except SceneValidationError as exc:
        for issue in exc.issues:
            print(issue, file=sys.stderr)
        return 1
    except (SceneError, CatalogError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {out}", file=sys.stderr)
    return 0


def _cmd_schema(args: argparse.Namespace) -> int:
    from scenes.schema import scene_schema

    text = json.dumps(scene_schema(), indent=2) + "\n"
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0
