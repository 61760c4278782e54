"""The report of a ``fixlens train product`` run: a model-card section and its plots.

``report.md`` has the settings, the time of every stage, and per product the plain figures of ``fixlens vision
eval`` before and after (product recall and part states over parts >= 4 px, a missed product counted wrong),
with the change, and for a product's own set the pose-check thresholds its ``pose-check`` stage chose.
``losses.png`` plots each network's training curves, ``recall.png`` the per-product figures before and after,
``parts.png`` each part's validation accuracy in the part-state network.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

FIGURES = ("product_recall", "part_state_accuracy_4px")
POSE_CHECK_REPORT = "pose-check-tuning.json"  # in the work folder: what the pose-check stage measured and chose


def _load(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.is_file() else None


def per_product(report: dict[str, Any] | None) -> dict[str, dict[str, float | None]]:
    """``{product: {figure: value}}`` from a ``vision eval`` JSON report."""
    if report is None:
        return {}
    return {pid: {f: stage.get(f) for f in FIGURES} for pid, stage in report.get("stages_by_product", {}).items()}


def _epochs(count: int) -> str:
    return str(count) if count else "0 (kept from the earlier set)"


def write_report(run: Any, stage_names: list[str]) -> dict[str, Any]:
    work: Path = run.work
    before, after = per_product(_load(work / "before.json")), per_product(_load(work / "after.json"))
    seconds = {}
    for name in stage_names:
        done = _load(work / "stages" / f"{name}.json")
        seconds[name] = done["seconds"] if done else None
    products = sorted(set(before) | set(after))
    title = f"`fixlens train product {run.product}`" if run.product else "`fixlens train all`"
    lines = [f"## {title}", "",
             f"Data: {run.images} rendered frames (seed 8700)"
             + (f", {run.product} in {run.focus_share:.0%} of the product frames" if run.product else "")
             + (f", plus {', '.join(map(str, run.rehearsal))}" if run.rehearsal else "") + ".",
             f"Fine-tuned from: {_start(run)}. Device: {run.device}. "
             f"Epochs: detector {_epochs(run.detector_epochs)}, appearance {_epochs(run.appearance_epochs)}"
             + (f" ({run.appearance_negatives} product-free frames)" if run.appearance_epochs else "") + ", keypoints "
             + (f"{run.keypoint_warmup_epochs} on every product's crops then {run.keypoint_epochs} on "
                f"{run.product}'s alone" if "keypoints-all" in stage_names else f"{run.keypoint_epochs}")
             + f" ({run.keypoint_jitter} crop{'s' if run.keypoint_jitter != 1 else ''} per frame), "
             f"parts {_epochs(run.part_epochs)}.",
             f"Evaluation: `fixlens vision eval --frames {run.eval_frames} --seed 9101` (held out), before and after.",
             "", "| stage | seconds |", "|---|---|"]
    lines += [f"| {name} | {'-' if s is None else f'{s:.0f}'} |" for name, s in seconds.items()]
    total = sum(s for s in seconds.values() if s)
    lines += [f"| total | {total:.0f} |", "",
              "| product | recall before | recall after | change | part states before | part states after | change |",
              "|---|---|---|---|---|---|---|"]
    for pid in products:
        row = [pid]
        for figure in FIGURES:
            b, a = before.get(pid, {}).get(figure), after.get(pid, {}).get(figure)
            row += [_fmt(b), _fmt(a), _fmt(None if a is None or b is None else a - b, signed=True)]
        lines.append("| " + " | ".join(row) + " |")
    lines += ["", *_pose_check_lines(_load(work / POSE_CHECK_REPORT)), *_diagnosis_lines(run.product, work)]
    plots = _plots(run, before, after)
    lines += [f"![{p.stem}]({p.name})" for p in plots]
    (work / "report.md").write_text("\n".join(lines) + "\n")
    return {"work": str(work), "seconds": seconds, "before": before, "after": after,
            "report": str(work / "report.md"), "plots": [str(p) for p in plots]}


def _start(run: Any) -> str:
    earlier = getattr(run, "earlier_set", None)
    if earlier is not None:
        return f"{run.init}, going on from its set for {run.product} ({earlier})"
    return str(run.init or "nothing (from scratch)")


def _pose_check_lines(tuned: dict[str, Any] | None) -> list[str]:
    """What the ``pose-check`` stage chose for the product's set (``vision tune-pose-check --set``'s report)."""
    if tuned is None:
        return []
    module, chosen = tuned["module"], tuned["chosen"]
    moved = ", ".join(f"{k} {module['thresholds'][k]} -> {chosen['thresholds'][k]}" for k in chosen["thresholds"]
                      if module["thresholds"][k] != chosen["thresholds"][k]) or "none"
    return [f"Pose-check thresholds of the product's set (tuning seed {tuned['seed']}, {tuned['positives']} product "
            f"frames, {tuned['negatives']} negatives): recall {module['recall']} with the module's, "
            f"{chosen['recall']} with its own; false detections {module['false_detections']} and "
            f"{chosen['false_detections']}. Moved from the module's: {moved}.", ""]


def _diagnosis_lines(product: str | None, work: Path) -> list[str]:
    """After the run, why the product's frames in view went unrecognised, its figures over the frames without
    another catalog product in view, and its keypoints the network cannot place (``vision eval``'s ``refused``,
    ``alone`` and ``keypoint_confidence_median``)."""
    from vision.keypoints import CROP_KEYPOINT_MIN_CONF

    after = _load(work / "after.json")
    stage = (after or {}).get("stages_by_product", {}).get(product) if product else None
    if not stage or "refused" not in stage:
        return []
    refused = ", ".join(f"{reason} {n}" for reason, n in stage["refused"].items()) or "none"
    lines = [f"Frames of {product} in view but not recognised, by what refused them (`vision eval`'s `refused`): "
             f"{refused}."]
    alone = stage.get("alone")
    if alone and alone.get("frames"):
        lines.append(f"Over the {alone['frames']} of its {stage.get('frames', '?')} frames with no other catalog "
                     f"product in view (beside the plain figures over all): recall {_fmt(alone['product_recall'])}, "
                     f"part states {_fmt(alone['part_state_accuracy_4px'])}.")
    weak = {k: c for k, c in stage.get("keypoint_confidence_median", {}).items() if c < CROP_KEYPOINT_MIN_CONF}
    if weak:
        lines.append(f"Keypoints the network cannot place (median confidence where visible under "
                     f"{CROP_KEYPOINT_MIN_CONF}, so left out of most poses): "
                     + ", ".join(f"{k} {c:.2f}" for k, c in weak.items())
                     + ". A keypoint must mark one spot: a corner or a feature, not a point along a plain edge "
                       "(docs/catalog.md, *Keypoints*).")
    return [*lines, ""]


def _fmt(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value:+.3f}" if signed else f"{value:.3f}"


def _plots(run: Any, before: dict, after: dict) -> list[Path]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # the report still has every figure as text
        return []
    out = []
    work: Path = run.work
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    rows = _csv(work / "runs" / "fixlens-pose" / "results.csv")
    if rows:
        for key in ("train/box_loss", "train/cls_loss", "train/pose_loss"):
            axes[0].plot([float(r["epoch"]) for r in rows], [float(r[key]) for r in rows], marker="o",
                         label=key.split("/")[1])
        axes[0].legend()
    axes[0].set_title("detector")
    for ax, name, key in ((axes[1], "keypoints.train.json", "train_l1_px"),
                          (axes[2], "part-states.train.json", "train_loss")):
        doc = _load(run.trained / name)
        if doc:
            ax.plot([h["epoch"] for h in doc["history"]], [h[key] for h in doc["history"]], marker="o", label=key)
            ax.legend()
        ax.set_title(name.split(".")[0])
    for ax in axes:
        ax.set_xlabel("epoch")
    fig.tight_layout()
    fig.savefig(work / "losses.png", dpi=90)
    plt.close(fig)
    out.append(work / "losses.png")

    products = sorted(set(before) | set(after))
    if products:
        fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
        for ax, figure in zip(axes, FIGURES, strict=True):
            xs = range(len(products))
            ax.bar([x - 0.2 for x in xs], [before.get(p, {}).get(figure) or 0 for p in products], 0.4, label="before")
            ax.bar([x + 0.2 for x in xs], [after.get(p, {}).get(figure) or 0 for p in products], 0.4, label="after")
            ax.set_xticks(list(xs), products, rotation=15)
            ax.set_ylim(0, 1.05)
            ax.axhline(0.9, color="grey", lw=0.8, ls="--")
            ax.set_title(figure)
            ax.legend(loc="upper left")
        fig.tight_layout()
        fig.savefig(work / "recall.png", dpi=90)
        plt.close(fig)
        out.append(work / "recall.png")

    parts = (_load(run.trained / "part-states.train.json") or {}).get("val_accuracy_by_part", {})
    if parts:
        names = sorted(parts)
        fig, ax = plt.subplots(figsize=(8, 0.22 * len(names) + 1.2))
        colours = ["tab:orange" if run.product and n.startswith(f"{run.product}/") else "tab:blue" for n in names]
        ax.barh(names, [parts[n] for n in names], color=colours)
        ax.set_xlim(0, 1.0)
        ax.set_title("part-state validation accuracy per part" + (f" ({run.product} in orange)" if run.product else ""))
        ax.tick_params(axis="y", labelsize=7)
        fig.tight_layout()
        fig.savefig(work / "parts.png", dpi=90)
        plt.close(fig)
        out.append(work / "parts.png")
    return out


def _csv(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with path.open() as f:
        return [{k.strip(): v.strip() for k, v in row.items()} for row in csv.DictReader(f)]
