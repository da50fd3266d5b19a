"""Rewrites that remove an island of nodes off the preferred delegate (``unified.explain``).

Each candidate is applied to the model (or its session options) and the
result planned again with the same delegates, options and plugin registry;
``Rewrite.partitions_after`` is that plan's partition count. Candidates:
pinning the symbolic input dims (``SessionOptions.free_dimensions``), folding
constant computations (``unified.onnx.fold.fold_constants``), converting to a
newer opset (``onnx.version_converter``), and placing the island's op types
on the preferred delegate (``SessionOptions.placement``; it helps only where
the delegate declined them for ``min_partition_nodes``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Mapping

import onnx

from unified.errors import UnifiedError
from unified.graph import ModelLike

if TYPE_CHECKING:
    from unified.pipeline import PlannedModel
    from unified.session import SessionOptions

__all__ = [
    "Rewrite", "Replanner", "pin_candidate", "fold_candidate", "opset_candidates", "placement_candidate",
    "best_rewrite", "owner_by_output", "OPSET_TARGETS",
]

OPSET_TARGETS = (13, 17, 18, 21)
"""Opsets the opset rewrite tries, lowest first (13: Split/Squeeze/Reduce* take
axes as inputs; 17: LayerNormalization; 18: Split num_outputs; 21: int4 QDQ)."""


@dataclass(frozen=True)
class Rewrite:
    """A change to the model or the session options that removes an island.

    Attributes:
        kind: ``"free_dims"``, ``"fold"``, ``"opset"`` or ``"placement"``.
        description: what to do, in words.
        cli: the ``unified`` options that apply it ("" where none does).
        partitions_before / partitions_after: partition counts of the plan
            before and after the rewrite (the latter from planning the
            rewritten model).
        free_dimensions: dims to pin (kind ``free_dims``).
        opset: the default-domain opset to convert to (kind ``opset``).
        placement: node name or op type -> delegate (kind ``placement``).
    """

    kind: str
    description: str
    cli: str
    partitions_before: int
    partitions_after: int
    free_dimensions: Mapping[str, int] = field(default_factory=dict)
    opset: int | None = None
    placement: Mapping[str, str] = field(default_factory=dict)

    def apply(self, model: ModelLike, options: "SessionOptions | None" = None):
        """The rewritten model and session options: plan them to get ``partitions_after``.

        Args:
            model: the model the explanation was made for (path, bytes or
                ``ModelProto``; not modified).
            options: the session options it was planned with.

        Returns:
            ``(model, options)``: for ``fold`` and ``opset`` a new
            ``onnx.ModelProto``, else ``model`` itself; a copy of
            ``options`` with the dims or placement added.
        """
        from unified.session import SessionOptions

        options = dataclasses.replace(options) if options is not None else SessionOptions()
        if self.kind == "free_dims":
            options.free_dimensions = {**options.free_dimensions, **self.free_dimensions}
        elif self.kind == "placement":
            options.placement = {**options.placement, **self.placement}
        elif self.kind == "fold":
            model = _folded(model, options)
        elif self.kind == "opset":
            model = _converted(model, self.opset)
        return model, options


# --- rewrites ------------------------------------------------------------------------


def _folded(model: ModelLike, options: "SessionOptions") -> onnx.ModelProto:
    """``model`` loaded (dims pinned as ``options`` says) with every constant computation folded."""
    from unified.graph import _infer_shapes, load_model
    from unified.onnx.fold import fold_constants

    return fold_constants(load_model(model, options.free_dimensions), _infer_shapes)


def _converted(model: ModelLike, opset: int | None) -> onnx.ModelProto:
    """``model`` converted to default-domain ``opset`` with ``onnx.version_converter``."""
    from onnx import version_converter

    from unified.graph import _read_model

    proto, _ = _read_model(model)
    return version_converter.convert_version(proto, int(opset or 0))


class Replanner:
    """Plans the model and its rewrites with the same delegates, options and registry.

    ``plan`` answers None when the rewritten model cannot be planned (the
    rewrite is then not offered).
    """

    def __init__(self, model: ModelLike, delegates, options: "SessionOptions", reg) -> None:
        self.model, self.delegates, self.options, self.reg = model, delegates, options, reg

    def plan(self, model: ModelLike, options: "SessionOptions") -> "PlannedModel | None":
        """Plan ``model`` with ``options`` (``execute=False``, no warning); None when planning fails."""
        from unified.pipeline import plan_model

        try:
            return plan_model(model, self.delegates, options, reg=self.reg, execute=False, warn=False)
        except (UnifiedError, onnx.checker.ValidationError, RuntimeError, ValueError):
            return None


def owner_by_output(planned: "PlannedModel") -> dict[str, str]:
    """First output name of each planned node -> its delegate (output names survive rewrites)."""
    index = {name: i for i, name in enumerate(planned.graph.node_names)}
    out: dict[str, str] = {}
    for p in planned.plan.partitions:
        for n in p.nodes:
            outputs = [o for o in planned.graph.nodes[index[n]].output if o]
            if outputs:
                out[outputs[0]] = p.delegate
    return out


def pin_candidate(replan: Replanner, planned: "PlannedModel", dims: Mapping[str, int]):
    """Pin every symbolic input dim: ``(Rewrite without counts, PlannedModel or None)``."""
    opts = dataclasses.replace(replan.options, free_dimensions={**replan.options.free_dimensions, **dims})
    cli = " ".join(f"--free-dim {k}={v}" for k, v in dims.items())
    values = ", ".join(f"{k}={v}" for k, v in dims.items())
    text = f"pin the symbolic input dims ({values}; use the sizes you run with)"
    rewrite = Rewrite("free_dims", text, cli, len(planned.plan.partitions), 0, free_dimensions=dict(dims))
    return rewrite, replan.plan(replan.model, opts)


def fold_candidate(replan: Replanner, planned: "PlannedModel"):
    """Fold constant computations, when that removes any node: ``(Rewrite, PlannedModel or None)`` or None."""
    try:
        folded = _folded(replan.model, replan.options)
    except UnifiedError:
        return None
    if len(folded.graph.node) >= len(planned.graph.nodes):
        return None
    text = "fold constant computations (unified.onnx.fold.fold_constants) and save the model"
    return Rewrite("fold", text, "", len(planned.plan.partitions), 0), replan.plan(folded, replan.options)


def opset_candidates(replan: Replanner, planned: "PlannedModel"):
    """Convert to each opset of :data:`OPSET_TARGETS` above the model's."""
    found = []
    for target in (t for t in OPSET_TARGETS if t > planned.graph.opsets.get("", 1)):
        try:
            converted = _converted(replan.model, target)
        except Exception:  # the converter has no adapter for some op: not a rewrite
            continue
        text = f"upgrade the model to opset {target} (onnx.version_converter.convert_version(model, {target}))"
        rewrite = Rewrite("opset", text, "", len(planned.plan.partitions), 0, opset=target)
        found.append((rewrite, replan.plan(converted, replan.options)))
    return found


def placement_candidate(replan: Replanner, planned, preferred: str, nodes, ops, reasons):
    """Place the island on ``preferred`` when it declined only for partition size."""
    if not reasons or any("min_partition_nodes" not in why for _, why, _ in reasons):
        return None
    for place in ({op: preferred for op in ops}, {n: preferred for n in nodes}):
        opts = dataclasses.replace(replan.options, placement={**replan.options.placement, **place})
        result = replan.plan(replan.model, opts)
        if result is not None:
            cli = " ".join(f"--place {k}={v}" for k, v in place.items())
            text = f"place {', '.join(sorted(place))} on '{preferred}' (SessionOptions.placement)"
            return Rewrite("placement", text, cli, len(planned.plan.partitions), 0, placement=place), result
    return None


def best_rewrite(candidates, outputs: list[str], preferred: str, before: int) -> Rewrite | None:
    """The candidate with the fewest partitions that puts every surviving node of the island on ``preferred``."""
    best = None
    for rw, result in candidates:
        owner = owner_by_output(result)
        after = len(result.plan.partitions)
        if after < before and all(owner.get(o, preferred) == preferred for o in outputs):
            if best is None or after < best.partitions_after:
                best = dataclasses.replace(rw, partitions_after=after)
    return best
