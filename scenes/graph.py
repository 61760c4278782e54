"""The step graph of a scene as Graphviz DOT text (and SVG when the ``dot`` program is installed)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from scenes.conditions import describe
from scenes.errors import SceneError
from scenes.i18n import pick
from scenes.model import Scene

_OUTCOME_COLORS = {"resolved": "palegreen", "escalate": "lightsalmon", "unresolved": "lightgrey"}


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def to_dot(scene: Scene, locale: str | None = None) -> str:
    """DOT source: one node per step (terminal steps coloured by outcome), one edge per way forward."""
    loc = locale or scene.default_locale
    lines = [f"digraph {_quote(scene.id)} {{", "  rankdir=TB;",
             '  node [shape=box, style="rounded,filled", fillcolor=white, fontname="Helvetica"];',
             '  edge [fontname="Helvetica", fontsize=10];',
             f"  label={_quote(pick(scene.title, loc, scene.default_locale) + ' (' + scene.product + ')')};",
             '  "__start" [shape=point, width=0.15];', f"  \"__start\" -> {_quote(scene.start)};"]
    for step in scene.steps.values():
        text = pick(step.text, loc, scene.default_locale)
        short = text if len(text) <= 60 else text[:57] + "..."
        attrs = [f"label={_quote(step.id + chr(10) + short)}"]
        if step.outcome:
            attrs += ["shape=doubleoctagon", f"fillcolor={_OUTCOME_COLORS[step.outcome]}"]
        lines.append(f"  {_quote(step.id)} [{', '.join(attrs)}];")
        for e in step.when:
            hold = f" (hold {e.hold:g}s)" if e.hold else ""
            lines.append(f"  {_quote(step.id)} -> {_quote(e.goto)} [label={_quote(describe(e.condition) + hold)}];")
        for c in step.choices:
            label = "choice: " + pick(c.label, loc, scene.default_locale)
            lines.append(f"  {_quote(step.id)} -> {_quote(c.goto)} [label={_quote(label)}, style=bold];")
        if step.on_timeout is not None:
            label = f"after {step.on_timeout.after:g}s"
            if step.on_timeout.goto is not None:
                lines.append(f"  {_quote(step.id)} -> {_quote(step.on_timeout.goto)} "
                             f"[label={_quote(label)}, style=dashed];")
            else:
                node = _quote(f"__handover_{step.id}")
                lines.append(f"  {node} [label=\"agent\", shape=doubleoctagon, fillcolor=lightsalmon];")
                lines.append(f"  {_quote(step.id)} -> {node} [label={_quote(label)}, style=dashed];")
        if step.done_goto is not None:
            lines.append(f"  {_quote(step.id)} -> {_quote(step.done_goto)} [label=\"done\", style=dotted];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def write_graph(scene: Scene, output: str | Path, locale: str | None = None) -> Path:
    """Write ``.dot`` (always possible) or ``.svg`` (needs Graphviz's ``dot``). Raises :class:`SceneError`."""
    out = Path(output)
    dot_text = to_dot(scene, locale)
    if out.suffix == ".dot":
        out.write_text(dot_text, encoding="utf-8")
        return out
    if out.suffix != ".svg":
        raise SceneError(f"{out}: unsupported graph format {out.suffix!r}; use .dot or .svg")
    program = shutil.which("dot")
    if program is None:
        raise SceneError("writing .svg needs Graphviz's 'dot' program, which is not installed "
                         "(apt-get install graphviz); write a .dot file instead")
    done = subprocess.run([program, "-Tsvg", "-o", str(out)], input=dot_text, text=True,
                          capture_output=True, check=False, timeout=60)
    if done.returncode != 0:
        raise SceneError(f"dot failed (exit {done.returncode}): {done.stderr.strip()}")
    return out
