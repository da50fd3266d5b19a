"""A self-contained HTML page of a plan's partition graph (``unified plan MODEL --html OUT``).

The page is ``templates/plan.html`` (CSS and JavaScript inline, no network)
with the plan's JSON embedded in a ``<script type="application/json">``
element, the pattern of the conformance report (``unified.conformance.render``):
one placeholder, no template engine. The script lays the partitions out in
layers (longest path from the model inputs), draws them as SVG boxes colored
by delegate, one arrow per producer -> consumer pair labelled with the
boundary tensors, and lists a partition's nodes on click. With an
:class:`~unified.explain.Explanation` the islands' partitions get a dashed red
outline and a table says why and what rewrite removes them.

Each partition is an SVG ``<g class="partition" id="partition-N">`` with
``data-index``, ``data-delegate`` and ``data-nodes`` attributes; the tests
read them from a headless browser's DOM.
"""

from __future__ import annotations

import json
from collections import Counter
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from unified.visualize.model_explorer import delegate_colors

if TYPE_CHECKING:
    from unified.explain import Explanation
    from unified.plan import Plan

__all__ = ["plan_page_data", "render_plan_html", "write_plan_html", "PLACEHOLDER"]

PLACEHOLDER = "__PLAN_DATA__"


def plan_page_data(plan: "Plan", title: str = "unified plan", explanation: "Explanation | None" = None
                   ) -> dict[str, Any]:
    """The JSON the page draws from: partitions (nodes with op types, boundary
    tensors, an op summary, island index or None), model inputs/outputs,
    delegate colors, and the islands (when ``explanation`` is given)."""
    island_of: dict[int, int] = {}
    islands = []
    for island in explanation or ():
        island_of.update({p: island.index for p in island.partitions})
        why = "; ".join(f"{op}: {reason}" for op, reason, _ in island.reasons[:3])
        rw = island.rewrite
        islands.append({
            "index": island.index, "nodes": len(island.nodes), "partitions": list(island.partitions), "why": why,
            "rewrite": f"{rw.description} -> {rw.partitions_after} partition(s)" if rw else "none found",
        })
    parts = []
    for p in plan.partitions:
        summary = ", ".join(f"{k}×{v}" if v > 1 else k for k, v in Counter(p.op_types).most_common(3))
        parts.append({
            "index": p.index, "delegate": p.delegate, "backend": p.backend, "fallback": p.fallback,
            "nodes": [{"name": n, "op": op} for n, op in zip(p.nodes, p.op_types)],
            "inputs": list(p.inputs), "outputs": list(p.outputs), "summary": summary,
            "island": island_of.get(p.index),
        })
    return {
        "title": title,
        "partitions": parts,
        "inputs": list(plan.inputs),
        "outputs": list(plan.outputs),
        "colors": delegate_colors(p.delegate for p in plan.partitions),
        "preferred": explanation.preferred if explanation else "",
        "islands": islands,
    }


def render_plan_html(plan: "Plan", title: str = "unified plan", explanation: "Explanation | None" = None) -> str:
    """The page's HTML text (see the module docstring)."""
    template = resources.files("unified.visualize").joinpath("templates/plan.html").read_text(encoding="utf-8")
    payload = json.dumps(plan_page_data(plan, title, explanation))
    # "</" would end the <script> element early; "<\/" is the same string to JSON.parse
    return template.replace(PLACEHOLDER, payload.replace("</", "<\\/"))


def write_plan_html(plan: "Plan", path: str | Path, title: str = "unified plan",
                    explanation: "Explanation | None" = None) -> Path:
    """Write :func:`render_plan_html` to ``path`` (parent folders created). Returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_plan_html(plan, title, explanation), encoding="utf-8")
    return path
