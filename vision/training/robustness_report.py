"""Presenting a robustness report: a text table, a bar chart, and a contact sheet of sample frames."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import cv2
import numpy as np

TILE = (224, 168)  # contact sheet tile, pixels (width, height)
CAPTION_PX = 16

_COLUMNS = (  # (header, key, format)
    ("recall", "product_recall", "{:.3f}"), ("parts>=4px", "part_state_accuracy_4px", "{:.3f}"),
    ("parts all", "part_state_accuracy_all", "{:.3f}"), ("abstain", "abstained_share", "{:.3f}"),
    ("pose p50", "pose_error_median_px", "{:.1f}"), ("pose p90", "pose_error_p90_px", "{:.1f}"),
    ("no pose", "pose_missing", "{}"), ("unsafe", "unsafe_reads", "{}"),
    ("false verif", "false_verifications", "{}"), ("clips", "clips", "{}"),
    ("false det", "false_detections", "{}"), ("seconds", "seconds", "{:.0f}"),
)


def format_table(report: Mapping[str, Any]) -> str:
    """One row per condition and one for all of them pooled; '-' where a figure does not exist (no pose
    percentile when more frames than that share had no pose; no clips without a verifier)."""
    rows = [("condition", *(h for h, _, _ in _COLUMNS))]
    for name, figures in [*report["conditions"].items(), ("overall", report["overall"])]:
        rows.append((name, *("-" if figures.get(key) is None else fmt.format(figures[key]) + _interval(figures, key)
                             for _, key, fmt in _COLUMNS)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(r, widths,
                                                                                                strict=True)))
             for r in rows]
    lines.insert(1, "-" * len(lines[0]))
    lines.insert(len(lines) - 1, "-" * len(lines[0]))
    by_product = report["overall"].get("by_product", {})
    if by_product:
        lines.append("per product, every condition pooled:")
    for pid, f in by_product.items():
        lines.append(f"  {pid}: {f['frames']} frames, recall {_figure(f['product_recall'])}, part states >= 4 px "
                     f"{_figure(f['part_state_accuracy_4px'])}, all {_figure(f['part_state_accuracy_all'])}")
    return "\n".join(lines)


def _interval(figures: Mapping[str, Any], key: str) -> str:
    """`` [low-high]``, the figure's 95 % interval (``KEY_ci95``) where the report has one, else ''."""
    interval = figures.get(f"{key}_ci95")
    return "" if interval is None else f" [{interval[0]:.3f}-{interval[1]:.3f}]"


def _figure(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def write_chart(report: Mapping[str, Any], path: Path) -> None:
    """A PNG bar chart: product recall and part-state accuracy (>= 4 px) per condition, each with its 95 %
    interval as an error bar where the report has one, targets as lines."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    names = list(report["conditions"])
    recall = [report["conditions"][n]["product_recall"] or 0.0 for n in names]
    parts = [report["conditions"][n]["part_state_accuracy_4px"] or 0.0 for n in names]
    fig = Figure(figsize=(max(7.0, 0.55 * len(names) + 3.5), 4.6), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    x = np.arange(len(names))
    for offset, key, values, label, colour in ((-0.2, "product_recall", recall, "product recall", "#3b75af"),
                                               (0.2, "part_state_accuracy_4px", parts, "part states (>= 4 px)",
                                                "#ef8636")):
        intervals = [report["conditions"][n].get(f"{key}_ci95") or [v, v] for n, v in zip(names, values, strict=True)]
        spread = np.array([[v - lo for v, (lo, _hi) in zip(values, intervals, strict=True)],
                           [hi - v for v, (_lo, hi) in zip(values, intervals, strict=True)]]).clip(0.0)
        bars = ax.bar(x + offset, values, 0.4, label=label, color=colour, yerr=spread,
                      error_kw={"elinewidth": 0.7, "capsize": 1.5, "ecolor": "#333333"})
        ax.bar_label(bars, labels=[f"{v:.3f}" for v in values], fontsize=5.5, padding=1, rotation=90,
                     label_type="center", color="white")
    targets = report["targets"]
    ax.axhline(targets["product_recall"], color="#3b75af", linestyle="--", linewidth=1,
               label=f"recall target {targets['product_recall']}")
    ax.axhline(targets["part_state_accuracy_4px"], color="#ef8636", linestyle=":", linewidth=1.2,
               label=f"part-state target {targets['part_state_accuracy_4px']}")
    ax.set_xticks(x, names, rotation=40, ha="right", fontsize=8)
    ax.set_ylim(0.0, 1.12)
    ax.set_ylabel("share")
    ax.set_title(f"Robustness by condition ({report['frames_per_condition']} frames each, seed {report['seed']}; "
                 "bars: 95 % intervals over frames)", fontsize=10)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(str(path), format="png")


def _tile(sample: Any) -> np.ndarray:
    """A sample letterboxed into a tile, the true box in green and covered pixels outlined in red."""
    img = np.ascontiguousarray(sample.image[:, :, ::-1])  # BGR for OpenCV drawing
    if sample.covered is not None and sample.covered.any():
        contours, _ = cv2.findContours(sample.covered.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(img, contours, -1, (0, 0, 255), 2)
    if sample.box is not None:
        x1, y1, x2, y2 = (round(float(v)) for v in sample.box)
        cv2.rectangle(img, (x1, y1), (x2, y2), (0, 200, 0), 2)
    w, h = TILE
    scale = min(w / img.shape[1], (h - CAPTION_PX) / img.shape[0])
    small = cv2.resize(img, (round(img.shape[1] * scale), round(img.shape[0] * scale)), interpolation=cv2.INTER_AREA)
    tile = np.full((h, w, 3), 40, np.uint8)
    x0 = (w - small.shape[1]) // 2
    tile[CAPTION_PX:CAPTION_PX + small.shape[0], x0:x0 + small.shape[1]] = small
    cv2.putText(tile, sample.label[:36], (3, CAPTION_PX - 4), cv2.FONT_HERSHEY_SIMPLEX, 0.36, (255, 255, 255), 1,
                cv2.LINE_AA)
    return tile


def contact_sheet(samples: Mapping[str, list[Any]]) -> np.ndarray:
    """(h, w, 3) uint8 BGR: one row of tiles per condition."""
    columns = max((len(s) for s in samples.values()), default=1) or 1
    rows = []
    for items in samples.values():
        tiles = [_tile(s) for s in items] + [np.full((TILE[1], TILE[0], 3), 40, np.uint8)] * (columns - len(items))
        rows.append(np.concatenate(tiles, axis=1))
    return np.concatenate(rows, axis=0) if rows else np.zeros((TILE[1], TILE[0], 3), np.uint8)


def write_debug(folder: Path, samples: Mapping[str, list[Any]]) -> None:
    """Each sample as ``FOLDER/<condition>/<n>_<label>.jpg`` (the frame as decoded), and
    ``FOLDER/contact_sheet.jpg`` with boxes and covered areas drawn."""
    for name, items in samples.items():
        sub = folder / name
        sub.mkdir(parents=True, exist_ok=True)
        for n, s in enumerate(items):
            stem = re.sub(r"[^A-Za-z0-9_=.-]+", "_", s.label).strip("_")
            cv2.imwrite(str(sub / f"{n}_{stem}.jpg"), np.ascontiguousarray(s.image[:, :, ::-1]),
                        [cv2.IMWRITE_JPEG_QUALITY, 92])
    folder.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(folder / "contact_sheet.jpg"), contact_sheet(samples), [cv2.IMWRITE_JPEG_QUALITY, 88])
