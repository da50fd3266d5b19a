"""Layer-wise comparison of delegates against ONNX Runtime, and of a compressed model against its float original.

:func:`compare` runs a model on each named delegate (with the session's
fallback, ``onnxruntime`` by default, for what the delegate declines) and, for
every tensor that crosses a partition boundary and every graph output,
measures the delegate's value against ONNX Runtime's value of the same tensor
in the whole model (``unified.debug.runs.Reference``). With
``all_tensors=True`` every intermediate tensor is made a boundary first (added
to the model's outputs, so its partition returns it): the figures are then
what each delegate computes when that tensor is a partition output, which can
differ from the fused computation it does otherwise.

:func:`compare_models` (``unified compare Q.onnx --against FLOAT.onnx``)
measures a quantized or otherwise compressed model, run on each delegate and on
ONNX Runtime alone, against the float model on ONNX Runtime, per graph output.

The metrics are ``unified.metrics``'s (their docstrings give the formulas).
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from unified.accuracy import accuracy_gate
from unified.choices import DelegateSpec
from unified.debug import runs
from unified.errors import InputError
from unified.graph import Graph, ModelLike
from unified.metrics import cosine_similarity, kl_divergence, max_abs_error, sqnr_db, topk_agreement

if TYPE_CHECKING:
    from unified.session import SessionOptions

__all__ = ["compare", "compare_models", "format_rows", "rows_to_json", "to_json", "ROW_KEYS", "MODEL_ROW_KEYS"]

ROW_KEYS = ("delegate", "tensor", "producer_node", "producer_op", "partition", "partition_delegate", "kind",
            "dtype", "shape", "max_abs", "max_rel", "cosine", "sqnr_db", "error", "ok")
"""Keys of one :func:`compare` row (``unified compare --json`` writes a list of these)."""

MODEL_ROW_KEYS = ("delegate", "output", "kl", "top1", "top5", "sqnr_db", "cosine", "max_abs")
"""Keys of one :func:`compare_models` row."""


def compare(
    model: ModelLike | Graph,
    delegates: Sequence[DelegateSpec],
    inputs: Mapping[str, Any] | None = None,
    all_tensors: bool = False,
    *,
    options: "SessionOptions | None" = None,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Per-tensor error of each delegate against ONNX Runtime, at every partition boundary.

    Args:
        model: path, bytes, ``onnx.ModelProto`` or a loaded ``Graph``.
        delegates: delegate names (or ``(name, options)`` pairs); each runs
            the model alone, with ``options.fallback`` for what it declines.
        inputs: input name -> array; inputs not given are drawn at random
            (``unified.graph.random_feed`` with ``seed``: floats U(-1, 1)).
        all_tensors: make every intermediate tensor a boundary (see the
            module docstring), not only those the plan cuts at.
        options: a ``SessionOptions`` (cache, fallback, strict, placement,
            free_dimensions, plugins are used).
        seed: seed of the random inputs.

    Returns:
        One dict per (delegate, tensor), in plan order, with :data:`ROW_KEYS`:
        ``tensor`` and the ``producer_node``/``producer_op`` that computes it,
        the ``partition`` (``"p3"``) and ``partition_delegate`` that produced
        it, ``kind`` (``"output"``: a graph output, ``"boundary"``: read by a
        later partition, ``"exposed"``: made a boundary by ``all_tensors``),
        ``dtype`` and ``shape``, the metrics ``max_abs``, ``max_rel``,
        ``cosine`` and ``sqnr_db`` (dB) against ONNX Runtime, ``error`` (max
        abs error / max(1, max|ref|)) and ``ok`` (``error <= 1e-3``, the
        default gate of ``unified.accuracy``).

    Raises:
        ModelError: the model cannot be loaded.
        InputError: an unknown input name, or an input that cannot be drawn.
        DelegateUnavailableError: an unknown or unavailable delegate.
        UnsupportedError: ONNX Runtime (the reference) declines a node.
        DelegateError: a delegate failed to compile or run a partition.
    """
    graph, options, reg = runs.load(model, options)
    if isinstance(delegates, (str, bytes)) or not delegates:
        raise InputError(f"delegates must be a non-empty list of delegate names, got {delegates!r}")
    feed = runs.make_feed(graph, inputs, seed, options.free_dimensions)
    target = Graph(runs.expose(graph, runs.exposable(graph)), options.free_dimensions) if all_tensors else graph
    reference = runs.Reference(graph, feed, options, reg)
    made_by = runs.producers(graph)
    graph_outputs = {o.name for o in graph.outputs}
    gate, _ = accuracy_gate(None)
    rows: list[dict[str, Any]] = []
    for spec in delegates:
        name = spec if isinstance(spec, str) else spec[0]
        built = runs.build(target, [spec], options, reg)
        env = runs.run_partitions(built, feed)
        wanted = [t for p in built.plan.partitions for t in p.outputs]
        ref = reference.values(wanted)
        for p in built.plan.partitions:
            for t in p.outputs:
                actual, expected = env.get(t), ref.get(t)
                if not _numeric(actual) or not _numeric(expected):
                    continue
                kind = "output" if t in graph_outputs else "boundary" if _read_later(t, p, built) else "exposed"
                node, op = made_by.get(t, ("", ""))
                row = {"delegate": name, "tensor": t, "producer_node": node, "producer_op": op,
                       "partition": p.name, "partition_delegate": p.delegate, "kind": kind,
                       "dtype": str(actual.dtype), "shape": list(actual.shape)}
                row.update(runs.tensor_metrics(actual, expected, gate))
                rows.append(row)
    return rows


def _numeric(value: Any) -> bool:
    return isinstance(value, np.ndarray) and value.dtype.kind in "fiub"


def _read_later(tensor: str, part, built) -> bool:
    return any(tensor in q.inputs for q in built.plan.partitions if q.index > part.index)


def compare_models(
    model: ModelLike | Graph,
    against: ModelLike | Graph,
    delegates: Sequence[DelegateSpec] = (),
    inputs: Mapping[str, Any] | None = None,
    *,
    options: "SessionOptions | None" = None,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """A compressed model (e.g. int8 QDQ) on each delegate against its float original on ONNX Runtime.

    ``model`` runs on ``onnxruntime`` alone (the compression's own error) and
    on each of ``delegates`` (with the fallback); ``against`` runs on ONNX
    Runtime (the reference of :mod:`unified.debug.runs`). Both get the same
    inputs; outputs are matched by name, else by position.

    Args:
        model: the compressed model.
        against: the float model; same input names, dtypes and shapes.
        delegates: delegate names or ``(name, options)`` pairs.
        inputs, options, seed: as :func:`compare`.

    Returns:
        One dict per (delegate, output) with :data:`MODEL_ROW_KEYS`: ``kl``
        (mean KL divergence of the softmax distributions along the last axis,
        nats; an output that already is a distribution along it -- non-negative,
        rows summing to 1 -- is taken as is), ``top1`` and ``top5`` (share of
        rows whose float arg-max is in the top 1 / top 5, in [0, 1]),
        ``sqnr_db`` (dB), ``cosine``, ``max_abs``. ``kl``/``top1``/``top5``
        are None for 0-d or non-float outputs.

    Raises:
        InputError: the two models' inputs or outputs do not correspond.
        (and as :func:`compare`)
    """
    graph, options, reg = runs.load(model, options)
    base, _, _ = runs.load(against, options)
    feed = runs.make_feed(graph, inputs, seed, options.free_dimensions)
    _check_inputs(graph, base)
    pairs = _output_pairs(graph, base)
    ref = runs.Reference(base, feed, options, reg).values([b for _, b in pairs])
    specs = [runs.REFERENCE[0]] + [d for d in delegates if (d if isinstance(d, str) else d[0]) != runs.REFERENCE[0]]
    rows = []
    for spec in specs:
        name = spec if isinstance(spec, str) else spec[0]
        built = runs.build(graph, [spec], options, reg)
        env = runs.run_partitions(built, feed)
        for out_name, ref_name in pairs:
            rows.append({"delegate": name, "output": out_name, **_model_metrics(env[out_name], ref[ref_name])})
    return rows


def _check_inputs(graph: Graph, base: Graph) -> None:
    mine = {t.name: (t.dtype, t.shape) for t in graph.input_infos()}
    theirs = {t.name: (t.dtype, t.shape) for t in base.input_infos()}
    if mine != theirs:
        raise InputError(
            f"the compared models take different inputs: {_describe(mine)} vs the float model's {_describe(theirs)}; "
            "they must have the same input names, dtypes and shapes"
        )


def _describe(inputs: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}: {d} {list(s) if s is not None else '?'}" for k, (d, s) in inputs.items())


def _output_pairs(graph: Graph, base: Graph) -> list[tuple[str, str]]:
    mine, theirs = [o.name for o in graph.outputs], [o.name for o in base.outputs]
    if set(mine) <= set(theirs):
        return [(n, n) for n in mine]
    if len(mine) == len(theirs):
        return list(zip(mine, theirs))
    raise InputError(f"cannot match outputs {mine} with the float model's {theirs}: neither names nor count agree")


def _model_metrics(actual: Any, expected: Any) -> dict[str, Any]:
    a, r = np.asarray(actual), np.asarray(expected)
    if a.shape != r.shape:
        raise InputError(f"output shapes differ: {list(a.shape)} vs the float model's {list(r.shape)}")
    out: dict[str, Any] = {"kl": None, "top1": None, "top5": None}
    if a.ndim >= 1 and a.dtype.kind == "f" and r.dtype.kind == "f" and a.shape[-1] > 1:
        probs = bool((r >= 0).all() and np.allclose(r.sum(axis=-1), 1.0, atol=1e-3))
        out["kl"] = kl_divergence(a, r, logits=not probs)
        out["top1"] = topk_agreement(a, r, k=1)
        out["top5"] = topk_agreement(a, r, k=5)
    out["sqnr_db"] = sqnr_db(a, r)
    out["cosine"] = cosine_similarity(a, r)
    out["max_abs"] = max_abs_error(a, r)
    return out


# --- presenting rows ---------------------------------------------------------------


def _cell(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, float):
        return f"{value:.4g}" if math.isfinite(value) else ("inf" if value > 0 else "-inf" if value < 0 else "nan")
    if value is None:
        return "-"
    return str(value)


def format_rows(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None) -> str:
    """``rows`` as a plain-text table (columns: ``columns``, default the first row's keys less ``dtype``)."""
    if not rows:
        return "(no rows)"
    cols = list(columns or [k for k in rows[0] if k not in ("dtype", "producer_op", "error")])
    cells = [cols] + [[_cell(r.get(c)) for c in cols] for r in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(cols))]
    lines = ["  ".join(v.ljust(w) for v, w in zip(line, widths)).rstrip() for line in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def to_json(value: Any) -> str:
    """``value`` (rows, or any nest of dicts, lists and scalars) as strict JSON; non-finite floats become the
    strings ``"inf"``, ``"-inf"``, ``"nan"`` (``float()`` reads them back)."""

    def safe(v: Any) -> Any:
        if isinstance(v, Mapping):
            return {k: safe(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [safe(x) for x in v]
        if isinstance(v, float) and not math.isfinite(v):
            return "inf" if v > 0 else "-inf" if v < 0 else "nan"
        return v

    return json.dumps(safe(value), indent=1, allow_nan=False)


def rows_to_json(rows: Sequence[Mapping[str, Any]]) -> str:
    """Rows as strict JSON: a list of objects (see :func:`to_json`)."""
    return to_json(list(rows))
