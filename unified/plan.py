"""The :class:`Plan`: which delegate runs which nodes, as ordered partitions.

A plan is data: frozen dataclasses, printable as a table, serializable to and
from JSON. The planner (``unified.planner``) makes one; the session compiles
and runs it.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Mapping

__all__ = ["Partition", "Rejection", "Plan", "CandidateResult", "Tuning", "PLAN_SCHEMA_VERSION"]

PLAN_SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Partition:
    """A connected, convex set of nodes run by one delegate on one backend.

    Attributes:
        index: position in execution order (0-based).
        delegate / backend: who runs it, where.
        nodes: node names, in the model's topological order.
        op_types: op type of each node, same order as ``nodes``.
        inputs: boundary values read from the model inputs or earlier
            partitions (initializers excluded), in the partition model's order.
        outputs: values later partitions or the model's outputs need.
        fallback: True when the delegate got these nodes only as the fallback
            (no delegate in the priority list claimed them).
        details: delegate facts known after compiling (JSON-safe), e.g. the
            ExecuTorch delegate's count of ops lowered to XNNPACK.
        specialized: the delegate compiles static shapes only and the
            partition's input shapes (or shape values it reads) are known only
            at run time: it is compiled at the first ``run()`` for each
            concrete input signature (``unified.specialize``).
    """

    index: int
    delegate: str
    backend: str
    nodes: tuple[str, ...]
    op_types: tuple[str, ...]
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    fallback: bool = False
    details: Mapping[str, Any] = field(default_factory=dict)
    specialized: bool = False

    @property
    def name(self) -> str:
        """``"p<index>"``, the partition's label in messages and artifact names."""
        return f"p{self.index}"


@dataclass(frozen=True)
class Rejection:
    """A higher-priority delegate's refusal of a node, with its reason."""

    node: str
    op_type: str
    delegate: str
    reason: str


@dataclass(frozen=True)
class CandidateResult:
    """One candidate plan measured by ``delegates="auto"`` (``unified.tune``).

    Attributes:
        name: e.g. ``"default"``, ``"tflite"`` (that delegate alone, with the
            fallback), ``"default, p1->onnxruntime"`` (the default plan with
            partition 1 moved), ``"combined"``, ``"reference"``.
        summary: the candidate's plan in one line (nodes per delegate, partitions).
        median_ms: median wall time of one ``run()``, milliseconds; None when
            it was not timed.
        spread_ms: interquartile range of those times, milliseconds.
        runs: timed runs (after warm-up).
        error: the accuracy gate's measure against ONNX Runtime (see
            ``Tuning.gate``); None when it never produced outputs.
        passed: it passed the accuracy gate.
        chosen: it is the plan the session runs.
        note: why it failed, was skipped, or is special.
    """

    name: str
    summary: str
    median_ms: float | None = None
    spread_ms: float | None = None
    runs: int = 0
    error: float | None = None
    passed: bool = False
    chosen: bool = False
    note: str = ""


@dataclass(frozen=True)
class Tuning:
    """How ``delegates="auto"`` chose a plan: the candidate table and the budget.

    Attributes:
        candidates: every candidate considered, in the order they were built.
        chosen: the chosen candidate's name.
        gate: the accuracy gate in words, e.g. ``"max|out - ref| / max(1, max|ref|) <= 0.001"``.
        budget_seconds: ``SessionOptions.tuning_seconds``.
        seconds: wall time tuning took (compiling and measuring), seconds.
        budget_exhausted: the budget ran out before every candidate was measured.
        from_cache: the decision was read from the tuning cache (nothing measured).
        key: the tuning-cache key (SHA-256 hex).
    """

    candidates: tuple[CandidateResult, ...]
    chosen: str
    gate: str
    budget_seconds: float
    seconds: float
    budget_exhausted: bool = False
    from_cache: bool = False
    key: str = ""

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Tuning":
        """Rebuild from ``dataclasses.asdict`` of a ``Tuning`` (as in ``Plan.to_dict``)."""
        cands = tuple(CandidateResult(**c) for c in d["candidates"])
        return cls(**{**d, "candidates": cands})

    def table(self) -> str:
        """The candidate table as text (chosen row marked ``*``), with a summary line."""
        from tabulate import tabulate

        def num(v, fmt):
            return "-" if v is None else format(v, fmt)

        rows = [
            (
                "*" if c.chosen else "",
                c.name,
                c.summary,
                num(c.median_ms, ".3f"),
                num(c.spread_ms, ".3f"),
                str(c.runs),
                num(c.error, ".2e"),
                "-" if c.error is None and not c.passed else "pass" if c.passed else "FAIL",
                c.note,
            )
            for c in self.candidates
        ]
        head = ("", "candidate", "plan", "median ms", "IQR ms", "runs", "error vs ORT", "gate", "note")
        lines = tabulate(rows, head, tablefmt="simple", disable_numparse=True).splitlines()
        lines.append(f"accuracy gate: {self.gate}")
        lines.append(self.summary_line())
        return "\n".join(lines)

    def summary_line(self) -> str:
        """One line: the choice, how long tuning took, budget and cache."""
        text = f"tuned (delegates='auto'): chose '{self.chosen}' of {len(self.candidates)} candidate(s)"
        if self.from_cache:
            return text + f" (decision from the tuning cache, key {self.key[:12]}; nothing measured)"
        text += f" in {self.seconds:.1f} s"
        if self.budget_exhausted:
            text += f"; the tuning budget of {self.budget_seconds:g} s ran out before every candidate was measured"
        return text


@dataclass(frozen=True)
class Plan:
    """Ordered partitions for one model.

    Attributes:
        partitions: in execution order; the partition graph is a DAG and this
            is a topological order of it.
        delegates: the priority list the plan was made with (fallback last,
            if one was used).
        rejections: for every node, the reason each delegate ahead of the
            one that got it declined it.
        inputs / outputs: the model's input and output names.
        tuning: with ``delegates="auto"``, how this plan was chosen (the
            candidate table); else None.
    """

    partitions: tuple[Partition, ...]
    delegates: tuple[str, ...]
    rejections: tuple[Rejection, ...] = ()
    inputs: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    tuning: Tuning | None = None

    @property
    def fallback_nodes(self) -> list[str]:
        """Names of the nodes that run on the fallback delegate."""
        return [n for p in self.partitions if p.fallback for n in p.nodes]

    def node_counts(self) -> dict[str, int]:
        """Number of nodes per delegate."""
        counts: Counter[str] = Counter()
        for p in self.partitions:
            counts[p.delegate] += len(p.nodes)
        return dict(counts)

    def assignment(self) -> dict[str, str]:
        """Node name -> delegate name."""
        return {n: p.delegate for p in self.partitions for n in p.nodes}

    def with_details(self, index: int, details: Mapping[str, Any]) -> "Plan":
        """A copy whose partition ``index`` carries ``details`` (facts known after compiling)."""
        parts = list(self.partitions)
        parts[index] = replace(parts[index], details=dict(details))
        return replace(self, partitions=tuple(parts))

    # --- output ----------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict with ``schema_version`` (see :meth:`from_dict`); ``tuning`` only when tuned."""
        d = asdict(self)
        if d["tuning"] is None:
            del d["tuning"]  # an untuned plan's JSON is what it was before tuning existed
        d["schema_version"] = PLAN_SCHEMA_VERSION
        return d

    def to_json(self, indent: int | None = 2) -> str:
        """:meth:`to_dict` as JSON text."""
        return json.dumps(self.to_dict(), indent=indent, default=str)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Plan":
        """Rebuild a plan from :meth:`to_dict`.

        Raises:
            ModelError: a different schema version or a malformed dict.
        """
        from unified.errors import ModelError

        if d.get("schema_version") != PLAN_SCHEMA_VERSION:
            raise ModelError(
                f"plan schema version {d.get('schema_version')!r} is not {PLAN_SCHEMA_VERSION}; "
                "re-create the plan with this version of unified"
            )
        parts = tuple(
            Partition(**{**p, **{k: tuple(p[k]) for k in ("nodes", "op_types", "inputs", "outputs")}})
            for p in d["partitions"]
        )
        rej = tuple(Rejection(**r) for r in d.get("rejections", ()))
        tuning = Tuning.from_dict(d["tuning"]) if d.get("tuning") else None
        return cls(parts, tuple(d["delegates"]), rej, tuple(d.get("inputs", ())), tuple(d.get("outputs", ())), tuning)

    @classmethod
    def from_json(cls, text: str) -> "Plan":
        """Rebuild a plan from :meth:`to_json` text; raises ``ModelError`` like :meth:`from_dict`."""
        return cls.from_dict(json.loads(text))

    def to_dot(self) -> str:
        """The partition graph in Graphviz DOT: one box per partition (colored
        by delegate), one edge per boundary tensor, model inputs and outputs
        as ellipses. Render with ``dot -Tsvg plan.dot > plan.svg``."""
        palette = ["#8dd3c7", "#ffffb3", "#bebada", "#fb8072", "#80b1d3", "#fdb462", "#b3de69", "#fccde5"]
        colors = {d: palette[i % len(palette)] for i, d in enumerate(dict.fromkeys(p.delegate for p in self.partitions))}
        lines = ["digraph plan {", "  rankdir=TB;", '  node [fontname="Helvetica", fontsize=10];']
        producer: dict[str, str] = {name: f"in_{i}" for i, name in enumerate(self.inputs)}
        for i, name in enumerate(self.inputs):
            lines.append(f"  in_{i} [shape=ellipse, label={_dot_quote(name)}];")
        for p in self.partitions:
            ops = ", ".join(f"{k}×{v}" if v > 1 else k for k, v in Counter(p.op_types).most_common(4))
            label = f"{p.name}: {p.delegate}/{p.backend}{' (fallback)' if p.fallback else ''}\n{len(p.nodes)} nodes: {ops}"
            lines.append(f"  {p.name} [shape=box, style=filled, fillcolor=\"{colors[p.delegate]}\", label={_dot_quote(label)}];")
            for x in p.inputs:
                if x in producer:
                    lines.append(f"  {producer[x]} -> {p.name} [label={_dot_quote(x)}];")
            for x in p.outputs:
                producer[x] = p.name
        for i, name in enumerate(self.outputs):
            lines.append(f"  out_{i} [shape=ellipse, label={_dot_quote(name)}];")
            if name in producer:
                lines.append(f"  {producer[name]} -> out_{i};")
        lines.append("}")
        return "\n".join(lines)

    def __str__(self) -> str:
        from tabulate import tabulate

        rows = []
        for p in self.partitions:
            ops = Counter(p.op_types)
            op_text = ", ".join(f"{k}×{v}" if v > 1 else k for k, v in ops.most_common(6))
            if len(ops) > 6:
                op_text += f", +{len(ops) - 6} more"
            rows.append(
                (
                    str(p.index),
                    p.delegate + (" (fallback)" if p.fallback else "") + (" (specialized at run)" if p.specialized else ""),
                    p.backend,
                    str(len(p.nodes)),
                    op_text,
                    _short(p.inputs),
                    _short(p.outputs),
                )
            )
        head = ("#", "delegate", "backend", "nodes", "ops", "inputs", "outputs")
        lines = tabulate(rows, head, tablefmt="simple", disable_numparse=True).splitlines()
        total = sum(len(p.nodes) for p in self.partitions)
        counts = ", ".join(f"{k}: {v}" for k, v in self.node_counts().items())
        lines.append(f"{len(self.partitions)} partition(s), {total} node(s) ({counts})")
        for p in self.partitions:
            if p.details:
                facts = ", ".join(f"{k}={v}" for k, v in p.details.items())
                lines.append(f"  p{p.index} {p.delegate}: {facts}")
        declined = _group_rejections(self.rejections)
        if declined:
            lines.append("declined (delegate: op: reason):")
            lines.extend(f"  {line}" for line in declined)
        if self.tuning is not None:
            lines.append(self.tuning.summary_line())
        return "\n".join(lines)


def _dot_quote(text: str) -> str:
    return '"' + text.replace('"', '\\"') + '"'


def _short(names: tuple[str, ...], limit: int = 3) -> str:
    if len(names) <= limit:
        return ", ".join(names)
    return ", ".join(names[:limit]) + f", +{len(names) - limit}"


def _group_rejections(rejections: tuple[Rejection, ...], limit: int = 20) -> list[str]:
    """One line per (delegate, op type, reason), with a node count."""
    groups: Counter[tuple[str, str, str]] = Counter((r.delegate, r.op_type, r.reason) for r in rejections)
    lines = [
        f"{d}: {op}: {reason}" + (f" ({n} nodes)" if n > 1 else "")
        for (d, op, reason), n in groups.most_common(limit)
    ]
    if len(groups) > limit:
        lines.append(f"... and {len(groups) - limit} more (see Plan.rejections)")
    return lines
