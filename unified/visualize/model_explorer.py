"""Node data for Google's Model Explorer (``ai-edge-model-explorer``).

Model Explorer shows an ONNX model through its ONNX adapter
(``model-explorer-onnx``) and colors its nodes from *custom node data* files:
JSON of ``model_explorer.node_data_builder.ModelNodeData``, i.e.
``{graph id: {"name": ..., "results": {node key: {"value": number,
"bgColor": css color}}, "gradient": [...]}}``. One file carries one metric.

Keys. The ONNX adapter makes one node per ONNX node with ``id`` = the node's
name (unnamed nodes get a generated name), and tags each output with its
value name (``outputsMetadata[].__tensor_tag``); a node-data key may be
either (``node_data_builder.GraphNodeData.results``). :func:`node_key` uses
the node name when the ONNX node has one, else its first output's name, so
every key matches whether or not the model names its nodes. The graph id is
the ONNX graph's name (``"<main>"`` when it has none), as the adapter sets it.

:func:`node_data` makes, per plan:

* ``partition``: value = partition index, background = the delegate's color;
* ``delegate``: value = the delegate's position in the plan's priority list;
* ``latency_ms`` (with ``profile``): the mean run time of the node's partition,
  milliseconds (``PartitionProfile.total_seconds / runs``);
* ``<delegate>.<metric>`` (with ``errors``, rows of ``unified compare``): for
  each metric ``max_abs``, ``max_rel``, ``cosine``, ``sqnr_db`` its value at
  the node producing the compared tensor. Non-finite values (an exact match's
  infinite SQNR) are left out: JSON has no infinity.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from unified.errors import InputError

__all__ = [
    "node_key", "node_data", "write_node_data", "load_errors", "delegate_colors", "ERROR_KEYS", "ERROR_METRICS", "PALETTE",
]

PALETTE = ("#8dd3c7", "#ffffb3", "#bebada", "#fb8072", "#80b1d3", "#fdb462", "#b3de69", "#fccde5")
"""Delegate colors, in order of first appearance (ColorBrewer Set3, as ``Plan.to_dot``)."""
ERROR_METRICS = ("max_abs", "max_rel", "cosine", "sqnr_db")
ERROR_KEYS = ("delegate", "tensor", "producer_node", "partition", *ERROR_METRICS)
_HIGHER_IS_BETTER = {"cosine", "sqnr_db"}
_LOW_HIGH = [{"stop": 0, "bgColor": "#e8f5e9"}, {"stop": 1, "bgColor": "#c62828"}]


def delegate_colors(delegates: Iterable[str]) -> dict[str, str]:
    """Delegate name -> color from :data:`PALETTE`, in first-appearance order."""
    names = list(dict.fromkeys(delegates))
    return {d: PALETTE[i % len(PALETTE)] for i, d in enumerate(names)}


def node_key(graph, index: int) -> str:
    """The Model Explorer key of ``graph.nodes[index]``: its ONNX name, else its first output name."""
    node = graph.nodes[index]
    return node.name or next((o for o in node.output if o), graph.node_names[index])


def _graph_id(graph) -> str:
    return graph.model.graph.name or "<main>"


def _file(graph, name: str, results: Mapping[str, dict], gradient: list | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {"name": name, "results": dict(results)}
    if gradient:
        data["gradient"] = gradient
    return {_graph_id(graph): data}


def load_errors(path: str | Path) -> list[dict[str, Any]]:
    """Rows of ``unified compare`` JSON (a list of rows, or ``{"rows": [...]}``).

    Raises:
        InputError: unreadable JSON, or a row that is not an object with the
            keys of :data:`ERROR_KEYS` (metrics may be null).
    """
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"--errors '{path}': cannot read it as JSON ({exc})") from None
    rows = data.get("rows") if isinstance(data, dict) else data
    if not isinstance(rows, list):
        raise InputError(f"--errors '{path}': expected a JSON list of rows (or {{\"rows\": [...]}}), "
                         f"got {type(data).__name__}")
    for i, row in enumerate(rows):
        missing = [k for k in ERROR_KEYS if not isinstance(row, dict) or k not in row]
        if missing:
            raise InputError(f"--errors '{path}': row {i} lacks {missing}; each row needs {list(ERROR_KEYS)}")
    return rows


def _profile_ms(profile: Sequence[Any]) -> dict[int, float]:
    """Partition index -> mean run time in ms, from ``PartitionProfile`` objects or their dicts."""
    out = {}
    for p in profile:
        d = p if isinstance(p, Mapping) else vars(p)
        if d.get("runs"):
            out[int(d["index"])] = float(d["total_seconds"]) / int(d["runs"]) * 1e3
    return out


def _error_files(graph, rows: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    index = {name: i for i, name in enumerate(graph.node_names)}
    made_by = {o: i for i, n in enumerate(graph.nodes) for o in n.output if o}
    files: dict[str, dict[str, dict]] = {}
    for row in rows:
        i = index.get(row["producer_node"], made_by.get(row["tensor"]))
        if i is None:
            continue  # a node the loaded model no longer has (folded)
        for metric in ERROR_METRICS:
            value = row.get(metric)
            if isinstance(value, (int, float)) and math.isfinite(value):
                files.setdefault(f"{row['delegate']}.{metric}", {})[node_key(graph, i)] = {"value": float(value)}
    out = {}
    for name, results in files.items():
        metric = name.rsplit(".", 1)[1]
        gradient = _LOW_HIGH[::-1] if metric in _HIGHER_IS_BETTER else _LOW_HIGH
        gradient = [{**g, "stop": s} for g, s in zip(gradient, (0, 1))]
        out[name] = _file(graph, f"error vs reference: {name}", results, gradient)
    return out


def node_data(planned, profile: Sequence[Any] | None = None, errors: Sequence[Mapping[str, Any]] | None = None
              ) -> dict[str, dict[str, Any]]:
    """Model Explorer node data for a plan: file name suffix -> ``ModelNodeData`` JSON dict.

    Args:
        planned: a ``unified.pipeline.PlannedModel`` (graph and plan).
        profile: ``InferenceSession.profile`` (or ``profile.json`` of
            ``unified run --profile --output-dir``), for ``latency_ms``.
        errors: rows of ``unified compare`` (:func:`load_errors`).

    Returns:
        ``{"partition": ..., "delegate": ..., ["latency_ms": ...],
        ["<delegate>.<metric>": ...]}``; each value serializes to a file
        Model Explorer loads as custom node data.
    """
    graph, plan = planned.graph, planned.plan
    index = {name: i for i, name in enumerate(graph.node_names)}
    colors = delegate_colors(p.delegate for p in plan.partitions)
    order = list(dict.fromkeys(list(plan.delegates) + [p.delegate for p in plan.partitions]))
    part, dele, lat = {}, {}, {}
    ms = _profile_ms(profile or ())
    for p in plan.partitions:
        for n in p.nodes:
            key = node_key(graph, index[n])
            part[key] = {"value": p.index, "bgColor": colors[p.delegate]}
            dele[key] = {"value": order.index(p.delegate), "bgColor": colors[p.delegate]}
            if p.index in ms:
                lat[key] = {"value": ms[p.index]}
    legend = ", ".join(f"{i}={d}" for i, d in enumerate(order) if d in colors)
    out = {
        "partition": _file(graph, "partition (color: delegate)", part),
        "delegate": _file(graph, f"delegate ({legend})", dele),
    }
    if lat:
        out["latency_ms"] = _file(graph, "partition latency, ms per run (mean)", lat, _LOW_HIGH)
    out.update(_error_files(graph, errors or ()))
    return out


def write_node_data(planned, out: str | Path, profile=None, errors=None) -> list[Path]:
    """Write :func:`node_data`: ``out`` gets the ``partition`` data, and each other
    file goes beside it as ``<out stem>.<suffix>.json``. Returns the paths written."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    paths = []
    for suffix, data in node_data(planned, profile, errors).items():
        path = out if suffix == "partition" else out.with_name(f"{out.stem}.{suffix}.json")
        path.write_text(json.dumps(data, indent=2))
        paths.append(path)
    return paths
