"""``fixlens products ...``: inspect, render and build the product catalog; ``fixlens bench render``."""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from product_models.catalog import Catalog, catalog_dir, default_catalog, localized
from product_models.errors import CatalogError


def register(sub: argparse._SubParsersAction) -> None:
    products = sub.add_parser("products", help="the product catalog: list, check, render, sheet, build",
                              description="Inspect the product catalog.")
    psub = products.add_subparsers(dest="products_command", metavar="ACTION", required=True)

    p = psub.add_parser("list", help="print every product with its parts and faults",
                        description="Print the id, name, parts (with states) and faults of every product, "
                                    "after validating every product.yaml, its twin section included.")
    p.add_argument("--locale", default="en", help="language of names (default: en)")
    p.add_argument("--catalog", type=Path, metavar="DIR",
                   help="catalog folder to check (default: $FIXLENS_CATALOG_DIR, else the shipped one)")
    p.set_defaults(handler=_cmd_list)

    p = psub.add_parser("check", help="check each model.glb against its product.yaml",
                        description="Check that each product's model.glb agrees with its product.yaml: a node per "
                                    "part, anchors on their nodes, size, keypoints, hinges, and every state "
                                    "rendered (docs/catalog.md). Exit 1 on any error, 0 when clean.")
    p.add_argument("products", nargs="*", metavar="ID", help="product ids (default: every product)")
    p.add_argument("--catalog", type=Path, metavar="DIR",
                   help="catalog folder to check (default: $FIXLENS_CATALOG_DIR, else the shipped one)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--no-render", action="store_true", help="skip the state renders (geometry checks only)")
    p.set_defaults(handler=_cmd_check)

    p = psub.add_parser("render", help="render a product in given part states to a PNG",
                        description="Render one product headless. Parts not named keep their healthy state.")
    p.add_argument("product", metavar="ID", help="product id, e.g. router_ax1800")
    p.add_argument("--state", action="append", default=[], metavar="PART=STATE",
                   help="a part state, e.g. led_internet=red (repeatable)")
    p.add_argument("--fault", help="start from the part states of this fault")
    p.add_argument("--yaw", type=float, default=25.0, help="degrees; 0 = front, 90 = right side (default 25)")
    p.add_argument("--pitch", type=float, default=30.0, help="degrees above the product (default 30)")
    p.add_argument("--distance", type=float, help="metres from the product centre (default: phone distance)")
    p.add_argument("--width", type=int, default=640, help="pixels (default 640)")
    p.add_argument("--height", type=int, default=480, help="pixels (default 480)")
    p.add_argument("--background", default="grey", metavar="COLOUR",
                   help="plain surface behind the product: grey (the default light grey), white, or R,G,B "
                        "(three integers 0..255)")
    p.add_argument("--markers", action="store_true", help="draw magenta dots at the keypoints")
    p.add_argument("--truth", type=Path, help="also write the ground truth as JSON to this file")
    p.add_argument("-o", "--output", type=Path, required=True, help="PNG file to write")
    p.set_defaults(handler=_cmd_render)

    p = psub.add_parser("sheet", help="contact sheet of every state of every part",
                        description="Render a labelled grid: one tile per part state, viewed from that part's side.")
    p.add_argument("product", metavar="ID")
    p.add_argument("--tile-width", type=int, default=256)
    p.add_argument("--tile-height", type=int, default=192)
    p.add_argument("--columns", type=int, default=5)
    p.add_argument("-o", "--output", type=Path, required=True, help="PNG file to write")
    p.set_defaults(handler=_cmd_sheet)

    p = psub.add_parser("build", help="regenerate the procedural model.glb files",
                        description="Write every product's procedural model.glb (byte-identical for the same code).")
    p.add_argument("--out", type=Path, help="write <OUT>/<id>/model.glb instead of into the catalog")
    p.add_argument("--check", action="store_true",
                   help="write nothing; exit 1 if a committed model.glb differs from a fresh build")
    p.set_defaults(handler=_cmd_build)


def register_bench(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("render", help="headless render speed per product",
                       description="Render each product from changing viewpoints; report the median frame rate "
                                   "(image and ground truth) per product.")
    p.add_argument("--frames", type=int, default=30, help="frames per product (default 30)")
    p.add_argument("--width", type=int, default=640)
    p.add_argument("--height", type=int, default=480)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(handler=_cmd_bench_render)


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def _cmd_list(args: argparse.Namespace) -> int:
    from product_models.twin_rules import parse_twin

    try:
        catalog = Catalog.load(args.catalog) if args.catalog else default_catalog()
        # The catalog loader leaves `twin:` to the twin; validate it here so one command checks the whole file.
        twins = {p.id: parse_twin(p) if p.twin_section is not None else None for p in catalog}
    except CatalogError as exc:
        return _fail(str(exc))
    for product in catalog:
        print(f"{product.id}: {localized(product.name, args.locale)}  "
              f"({product.size_mm[0]:g} x {product.size_mm[1]:g} x {product.size_mm[2]:g} mm)")
        print("  parts:")
        for part in product.parts:
            states = f" [{', '.join(part.states)}]" if part.states else ""
            actions = f" actions: {', '.join(part.actions)}" if part.actions else ""
            print(f"    {part.name:<16} {part.kind:<8}{states}{actions}".rstrip())
        print("  faults:")
        for fault in product.faults.values():
            print(f"    {fault.name:<16} {localized(fault.description, args.locale)}")
        spec = twins[product.id]
        print(f"  twin: {len(spec.rules)} rules, hidden vars: {', '.join(spec.vars) or '(none)'}" if spec
              else "  twin: none (no 'twin:' section)")
    return 0


def _cmd_check(args: argparse.Namespace) -> int:
    from product_models.check import check_catalog

    try:
        # check_catalog's own default is the shipped folder; the command follows $FIXLENS_CATALOG_DIR like the others.
        results = check_catalog(args.catalog or catalog_dir(), args.products, render=not args.no_render)
    except CatalogError as exc:
        return _fail(str(exc))
    findings = [f for found in results.values() for f in found]
    errors = sum(f.severity == "error" for f in findings)
    if args.json:
        print(json.dumps({"errors": errors, "warnings": len(findings) - errors,
                          "products": {pid: [f.to_dict() for f in found] for pid, found in results.items()}}))
    else:
        for pid, found in results.items():
            for finding in found:
                print(finding)
            bad = sum(f.severity == "error" for f in found)
            print(f"{pid}: {bad} error(s), {len(found) - bad} warning(s)" if found else f"{pid}: ok")
    return 1 if errors else 0


def _parse_states(items: list[str]) -> dict[str, str]:
    states = {}
    for item in items:
        part, sep, state = item.partition("=")
        if not sep or not part or not state:
            raise CatalogError(f"--state {item!r}: expected PART=STATE, e.g. led_internet=red")
        states[part.strip()] = state.strip()
    return states


def _write_png(path: Path, image_rgb) -> None:
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), image_rgb[:, :, ::-1]):
        raise CatalogError(f"{path}: cannot write the PNG")


def _cmd_render(args: argparse.Namespace) -> int:
    try:
        from product_models.render_view import parse_background, render_view

        product = default_catalog().get(args.product)
        states = product.fault_states(args.fault) if args.fault else product.healthy_states()
        extra = _parse_states(args.state)
        for part, state in extra.items():
            product.check_state(part, state)
        states.update(extra)
        try:
            background = parse_background(args.background)
        except CatalogError as exc:
            raise CatalogError(f"--background: {exc}") from None
        result = render_view(product, states, yaw=args.yaw, pitch=args.pitch, distance=args.distance,
                             width=args.width, height=args.height, background=background, markers=args.markers)
        _write_png(args.output, result.image)
        if args.truth:
            args.truth.write_text(json.dumps(result.truth.to_dict(), indent=1))
    except CatalogError as exc:
        return _fail(str(exc))
    print(f"wrote {args.output} ({args.width}x{args.height}, {product.id}, "
          f"{', '.join(f'{k}={v}' for k, v in sorted(states.items()))})")
    return 0


def _cmd_sheet(args: argparse.Namespace) -> int:
    try:
        from product_models.render import Renderer
        from product_models.render_sheet import contact_sheet

        product = default_catalog().get(args.product)
        if not (64 <= args.tile_width <= 2048 and 48 <= args.tile_height <= 2048 and 1 <= args.columns <= 20):
            raise CatalogError("tile size must be within 64x48..2048x2048 and columns within 1..20")
        sheet = contact_sheet(Renderer(args.tile_width, args.tile_height), product, args.tile_width,
                              args.tile_height, args.columns)
        _write_png(args.output, sheet)
    except CatalogError as exc:
        return _fail(str(exc))
    print(f"wrote {args.output} ({sheet.shape[1]}x{sheet.shape[0]})")
    return 0


def _cmd_build(args: argparse.Namespace) -> int:
    import tempfile

    from product_models.modeling import build_all

    try:
        if args.check:
            with tempfile.TemporaryDirectory() as tmp:
                stale = []
                for fresh in build_all(tmp):
                    committed = default_catalog().get(fresh.parent.name).folder / fresh.name
                    if not committed.exists() or committed.read_bytes() != fresh.read_bytes():
                        stale.append(str(committed))
            if stale:
                import cv2

                print("out of date (run `fixlens products build`; with the code unchanged, an OpenCV other than "
                      f"the 5.0 that pyproject's dev extra pins draws the labels differently, here {cv2.__version__}): "
                      + ", ".join(stale), file=sys.stderr)
                return 1
            print("all procedural models are up to date")
            return 0
        for path in build_all(args.out):
            print(f"wrote {path} ({path.stat().st_size} bytes)")
    except (CatalogError, OSError) as exc:
        return _fail(str(exc))
    return 0


def _cmd_bench_render(args: argparse.Namespace) -> int:
    from product_models.camera import CameraIntrinsics
    from product_models.render import Renderer
    from product_models.render_sheet import HFOV_DEG, product_view

    if args.frames < 1:
        return _fail("--frames must be >= 1")
    try:
        renderer = Renderer(args.width, args.height)
        camera = CameraIntrinsics.from_fov(args.width, args.height, HFOV_DEG)
        report: dict = {"bench": "render", "display": renderer.display, "width": args.width,
                        "height": args.height, "frames": args.frames, "products": {}}
        for product in default_catalog():
            states = product.healthy_states()
            renderer.render(product, states, product_view(product), camera)  # load + warm caches
            times = []
            for i in range(args.frames):
                pose = product_view(product, yaw=-60 + 120 * i / max(args.frames - 1, 1), pitch=20 + 20 * (i % 2))
                start = time.perf_counter()
                renderer.render(product, states, pose, camera)
                times.append(time.perf_counter() - start)
            med = statistics.median(times)
            report["products"][product.id] = {"fps_median": round(1.0 / med, 2), "ms_median": round(med * 1e3, 2),
                                              "ms_max": round(max(times) * 1e3, 2)}
    except CatalogError as exc:
        return _fail(str(exc))
    if args.json:
        print(json.dumps(report))
    else:
        for pid, r in report["products"].items():
            print(f"{pid}: {r['fps_median']} fps ({r['ms_median']} ms median) at {args.width}x{args.height}"
                  f" on {report['display']}")
    return 0
