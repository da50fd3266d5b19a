"""What the delegate claims and why not: the lowering table's entry type and
its shared checks.

One :class:`Lowering` per ONNX op type says, as data, what the translator
handles: the opset range, the element types of the first input, the
attributes it reads (any other attribute present declines the node), which
input slots must be known while tracing ("host" inputs such as a Reshape's
shape), and constraint checks that return ``None`` or a reason. The same
entries give the delegate's ``op_support`` table, so ``supports()`` and the
translator cannot disagree about what is handled.

Values flowing through the translator are either ``torch.Tensor`` (traced
into the exported program) or NumPy arrays ("host values": constants, and
shape arithmetic such as ``Shape -> Gather -> Concat``). Partitions reach
``compile()`` with static shapes (the delegate has ``static_shapes``), so
host values are plain numbers. The ``dtype=object`` branches (host arrays of
``torch.SymInt``, from the former ``torch.export.Dim`` export of dynamic
dims) no longer occur; they are kept only until a clean-up removes them
with tests, and are inert. The helpers the lowerings share (host values,
the lazy ``torch`` module, pads) are in ``ops_common``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

from onnx import TensorProto

from unified.delegate import Constraint, OpSupport
from unified.graph import NodeView, TensorInfo
from unified.onnx import dtype_name

__all__ = [
    "Lowering",
    "HOST_ROLES",
    "FLOAT",
    "NUMERIC",
    "INTS",
    "ALL",
    "BOOL",
    "TORCH_DTYPES",
    "QUANT_DTYPES",
    "torch_dtype_names",
    "check_typed",
    "spatial_rank",
]

FLOAT = frozenset({TensorProto.FLOAT})
INTS = frozenset({TensorProto.INT32, TensorProto.INT64})
NUMERIC = FLOAT | INTS
BOOL = frozenset({TensorProto.BOOL})
ALL = NUMERIC | BOOL

#: ONNX element type -> torch dtype name (resolved lazily: torch is imported
#: only inside the delegate's compile path).
TORCH_DTYPES = {
    TensorProto.FLOAT: "float32",
    TensorProto.INT32: "int32",
    TensorProto.INT64: "int64",
    TensorProto.BOOL: "bool",
}

#: Quantized element types: values only QuantizeLinear produces and
#: DequantizeLinear reads (``ops_quant``); no other lowering takes them.
QUANT_DTYPES = {TensorProto.INT8: "int8"}


def torch_dtype_names() -> str:
    """The element types the lowering handles, named: ``"float, int32, int64, bool"``."""
    return ", ".join(dtype_name(t) for t in TORCH_DTYPES)


@dataclass(frozen=True)
class Lowering:
    """One row of the lowering table.

    Attributes:
        op_type: ONNX op type (default domain).
        fn: ``fn(node, *inputs) -> Tensor | tuple`` building torch ops; gets
            ``None`` for omitted optional inputs, ``torch.Tensor`` for tensor
            slots and NumPy arrays for ``host_inputs`` slots.
        attrs: attribute names the translator reads; any other attribute
            present on the node declines it.
        dtypes: element types accepted for the first input (empty: any).
        since / until: opset range handled (inclusive).
        host_inputs: input slots that must be known while tracing (constants
            or shape arithmetic); a non-constant one must be a 1-D or 0-D
            integer tensor of static length.
        either_inputs: input slots passed as they come, host value or tensor
            (e.g. Gather indices: constant ones are folded, others traced).
        host_fn: ``host_fn(node, *arrays) -> ndarray | tuple`` evaluating the
            op on host values (constant folding and shape arithmetic); used
            when every input is a host value. It returns ``NotImplemented``
            where a symbolic operand would have to become a Python int (an
            index or a size), and ``fn`` traces the op instead.
        constraints: further checks, each returning None or a reason.
        max_outputs: how many outputs the translator produces; a node asking
            for more (e.g. MaxPool's Indices) is declined.
        type_check: the check that every input has a rank and dtype and
            every dtype maps to torch (:func:`check_typed`; the Q/DQ entries
            also allow int8).
    """

    op_type: str
    fn: Callable[..., Any]
    attrs: frozenset[str] = frozenset()
    dtypes: frozenset[int] = FLOAT
    since: int = 1
    until: int | None = None
    host_inputs: tuple[int, ...] = ()
    either_inputs: tuple[int, ...] = ()
    host_fn: Callable[..., Any] | None = None
    constraints: tuple[Constraint, ...] = ()
    max_outputs: int = 1
    type_check: Constraint | None = None  # None: check_typed

    @property
    def support(self) -> OpSupport:
        """The :class:`OpSupport` entry ``supports()`` consults."""
        return OpSupport(
            self.op_type,
            since=self.since,
            until=self.until,
            dtypes=self.dtypes,
            constraints=(self._check_attrs, self._check_outputs, self.type_check or check_typed, _check_nonempty,
                         self._check_host_inputs)
            + self.constraints,
        )

    def _check_attrs(self, node: NodeView) -> str | None:
        extra = sorted(set(node.attributes) - self.attrs)
        if extra:
            handled = ", ".join(sorted(self.attrs)) or "none"
            return f"{node.op_type} attribute(s) {extra} not handled by the ExecuTorch lowering (handled: {handled})"
        return None

    def _check_outputs(self, node: NodeView) -> str | None:
        used = [t.name for t in node.outputs[self.max_outputs :] if t.name]
        if used:
            return f"{node.op_type} optional output(s) {used} not produced by the ExecuTorch lowering"
        return None

    def _check_host_inputs(self, node: NodeView) -> str | None:
        """Inputs read at compile time must be known then.

        A constant is; so is a shape-derived value (``Shape -> Gather ->
        Concat``...): the core folds it into an initializer when it
        specializes the partition (``Delegate.static_shapes``). Anything
        else is read from tensor data at run time, which a static program
        cannot do.
        """
        for slot in self.host_inputs:
            if slot >= len(node.inputs) or not node.inputs[slot].name:
                continue
            t = node.inputs[slot]
            if t.const is not None or t.shape_derived:
                continue
            role = HOST_ROLES.get((node.op_type, slot)) or ("axes" if node.op_type.startswith("Reduce") else f"input {slot}")
            return (
                f"data-dependent {node.op_type} {role}: '{t.name}' is computed from tensor data, not from shapes "
                "or constants; the ExecuTorch program needs it at compile time"
            )
        return None


#: (op type, input slot) -> what the slot is, for the reasons of declines.
HOST_ROLES = {
    ("Reshape", 1): "shape",
    ("Expand", 1): "shape",
    ("Tile", 1): "repeats",
    ("ConstantOfShape", 0): "shape",
    ("Split", 1): "split sizes",
    ("Slice", 1): "starts",
    ("Slice", 2): "ends",
    ("Slice", 3): "axes",
    ("Slice", 4): "steps",
    ("Squeeze", 1): "axes",
    ("Unsqueeze", 1): "axes",
    ("Pad", 1): "pads",
    ("Pad", 2): "constant value",
    ("Pad", 3): "axes",
    ("Range", 0): "start",
    ("Range", 1): "limit",
    ("Range", 2): "delta",
    ("Resize", 1): "roi",
    ("Resize", 2): "scales",
    ("Resize", 3): "sizes",
    ("Dropout", 1): "ratio",
    ("Dropout", 2): "training_mode",
    ("Clip", 1): "min",
    ("Clip", 2): "max",
}


def check_typed(node: NodeView, extra: Mapping[int, str] | None = None) -> str | None:
    """torch.export needs the rank of every input; every known dtype must map to torch.

    An output without an inferred type is accepted: a consumer's input check
    (or partition extraction, for a boundary value) catches it if it is used.

    Args:
        extra: element types allowed besides :data:`TORCH_DTYPES` (the Q/DQ
            lowerings pass :data:`QUANT_DTYPES`).
    """
    for t in node.inputs:
        if t.name and (t.shape is None or not t.elem_type):
            return f"input '{t.name}' has no inferred {'rank' if t.elem_type else 'dtype'}; torch.export needs both"
    for t in node.inputs + node.outputs:
        if t.name and t.elem_type and t.elem_type not in TORCH_DTYPES and t.elem_type not in (extra or {}):
            return f"value '{t.name}' has dtype {t.type_str}; the ExecuTorch lowering handles {torch_dtype_names()}"
    return None


def _check_nonempty(node: NodeView) -> str | None:
    """The ExecuTorch runtime refuses tensors with a 0 dim (``0 in strides``) as
    program inputs, outputs and intermediates; constants are folded on the host.
    A dim inference at load left unknown counts as zero when the load-time
    specialization trial (``TensorInfo.trial_shape``) found it zero."""
    for t in node.inputs + node.outputs:
        if not t.name or t.const is not None:
            continue
        if t.shape is not None and any(d == 0 for d in t.shape):
            return f"value '{t.name}' has a zero-size dim {_shape(t)}; the ExecuTorch runtime rejects empty tensors"
        if t.trial_shape is not None and 0 in t.trial_shape:
            return (f"value '{t.name}' has a zero-size dim once shapes are folded {list(t.trial_shape)}; "
                    "the ExecuTorch runtime rejects empty tensors")
    return None


def _shape(t: TensorInfo) -> str:
    return "[?]" if t.shape is None else "[" + ", ".join("?" if d is None else str(d) for d in t.shape) + "]"


def spatial_rank(node: NodeView) -> str | None:
    """Constraint: the first input is ``(N, C, ...)`` with 1 to 3 spatial dims (rank 3..5)."""
    r = node.inputs[0].rank
    if r is None or not 3 <= r <= 5:
        return f"{node.op_type} on rank-{r} input not handled (handled: 1-D, 2-D, 3-D spatial, i.e. rank 3..5)"
    return None
