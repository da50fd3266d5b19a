"""The ONNX-op -> torch lowering table's entry type and its shared checks.

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
with tests, and are inert.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
from onnx import TensorProto

from unified.delegate import Constraint, OpSupport
from unified.errors import DelegateError
from unified.graph import NodeView, TensorInfo

__all__ = [
    "Lowering",
    "LoweringError",
    "HOST_ROLES",
    "FLOAT",
    "NUMERIC",
    "INTS",
    "ALL",
    "BOOL",
    "TORCH_DTYPES",
    "is_host",
    "host_ints",
    "static_input",
    "attr_in",
    "torch",
    "F",
    "torch_dtype",
    "onnx_pads",
    "torch_pad_list",
    "static_output_shape",
    "to_tensor",
    "symbolic",
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


class LoweringError(DelegateError):
    """The translator met something its table entry claimed but cannot trace
    (e.g. a Reshape shape computed from tensor data rather than from shapes)."""


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

    @property
    def support(self) -> OpSupport:
        """The :class:`OpSupport` entry ``supports()`` consults."""
        return OpSupport(
            self.op_type,
            since=self.since,
            until=self.until,
            dtypes=self.dtypes,
            constraints=(self._check_attrs, self._check_outputs, _check_typed, _check_nonempty, self._check_host_inputs)
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


def _check_typed(node: NodeView) -> str | None:
    """torch.export needs the rank of every input; every known dtype must map to torch.

    An output without an inferred type is accepted: a consumer's input check
    (or partition extraction, for a boundary value) catches it if it is used.
    """
    for t in node.inputs:
        if t.name and (t.shape is None or not t.elem_type):
            return f"input '{t.name}' has no inferred {'rank' if t.elem_type else 'dtype'}; torch.export needs both"
    for t in node.inputs + node.outputs:
        if t.name and t.elem_type and t.elem_type not in TORCH_DTYPES:
            return f"value '{t.name}' has dtype {t.type_str}; the ExecuTorch lowering handles float, int32, int64, bool"
    return None


def _check_nonempty(node: NodeView) -> str | None:
    """The ExecuTorch runtime refuses tensors with a 0 dim (``0 in strides``) as
    program inputs, outputs and intermediates; constants are folded on the host."""
    for t in node.inputs + node.outputs:
        if t.name and t.const is None and t.shape is not None and any(d == 0 for d in t.shape):
            return f"value '{t.name}' has a zero-size dim {_shape(t)}; the ExecuTorch runtime rejects empty tensors"
    return None


def _shape(t: TensorInfo) -> str:
    return "[?]" if t.shape is None else "[" + ", ".join("?" if d is None else str(d) for d in t.shape) + "]"


# --- helpers for entries ---------------------------------------------------


def is_host(value: Any) -> bool:
    """True for a host value (NumPy array), False for a ``torch.Tensor``."""
    return isinstance(value, np.ndarray)


def host_ints(value: np.ndarray | None) -> list:
    """A host value as a flat list of Python ints / ``torch.SymInt``."""
    if value is None:
        return []
    flat = value.reshape(-1).tolist()
    return [v if not isinstance(v, (float, np.floating)) else int(v) for v in flat]


def static_input(slot: int, what: str) -> Constraint:
    """Constraint: input ``slot`` must be a constant (e.g. a weight read as data)."""

    def check(node: NodeView) -> str | None:
        if slot < len(node.inputs) and node.inputs[slot].name and not node.inputs[slot].is_initializer:
            if node.inputs[slot].const is None:
                return f"{node.op_type} {what} (input {slot}) must be a constant for the ExecuTorch lowering"
        return None

    return check


def attr_in(name: str, allowed: tuple, default: Any) -> Constraint:
    """Constraint: attribute ``name`` (default ``default``) takes one of ``allowed``."""

    def check(node: NodeView) -> str | None:
        value = node.attr(name, default)
        if value not in allowed:
            return f"{node.op_type} {name}={value!r} not handled (handled: {', '.join(map(repr, allowed))})"
        return None

    return check


class _LazyModule:
    """Attribute access imports the module on first use, so the table can be
    built (and ``supports()`` answered) without importing torch."""

    def __init__(self, name: str):
        self._name = name
        self._module = None

    def __getattr__(self, attr: str) -> Any:
        if self._module is None:
            import importlib

            self._module = importlib.import_module(self._name)
        return getattr(self._module, attr)


torch = _LazyModule("torch")
F = _LazyModule("torch.nn.functional")


def torch_dtype(elem_type: int):
    """torch dtype of an ONNX element type in :data:`TORCH_DTYPES`."""
    return getattr(torch, TORCH_DTYPES[elem_type])


def onnx_pads(node: NodeView, spatial: list, kernel: list, strides: list, dilations: list) -> tuple[list, list]:
    """Begin and end paddings of a Conv/pool node, one per spatial dim.

    ``auto_pad`` SAME_UPPER / SAME_LOWER follow the ONNX Conv spec: total
    padding ``max((ceil(in / stride) - 1) * stride + (k - 1) * dilation + 1 - in, 0)``,
    the odd element at the end (UPPER) or the beginning (LOWER).
    """
    nd = len(kernel)
    mode = node.attr("auto_pad", "NOTSET")
    if mode in ("NOTSET", ""):
        pads = list(node.attr("pads", [0] * (2 * nd)))
        return pads[:nd], pads[nd:]
    if mode == "VALID":
        return [0] * nd, [0] * nd
    begins, ends = [], []
    for size, k, s, d in zip(spatial, kernel, strides, dilations):
        total = max((-(-size // s) - 1) * s + (k - 1) * d + 1 - size, 0)
        small, big = total // 2, total - total // 2
        begins.append(small if mode == "SAME_UPPER" else big)
        ends.append(big if mode == "SAME_UPPER" else small)
    return begins, ends


def torch_pad_list(begins: list, ends: list) -> list:
    """ONNX per-dim (begin, end) pads -> ``F.pad``'s last-dim-first pair list."""
    out = []
    for b, e in zip(reversed(begins), reversed(ends)):
        out += [b, e]
    return out


def static_output_shape(node: NodeView, slot: int = 0) -> list[int]:
    """The inferred static shape of output ``slot``.

    Raises:
        LoweringError: the shape is not static (the node's shape input was
            computed from tensor data, which torch.export cannot trace).
    """
    t = node.outputs[slot]
    if not t.is_static:
        raise LoweringError(
            f"{node.op_type} node '{node.name}': its shape input is computed from tensor data and its output "
            f"shape is not static; torch.export needs shapes known while tracing"
        )
    return list(t.shape)


def symbolic(*values: Any) -> bool:
    """True when any host value holds ``torch.SymInt`` elements (``dtype=object``)."""
    return any(is_host(v) and v.dtype == object for v in values)


def to_tensor(value: Any, dtype: Any = None):
    """A host value (NumPy array, possibly of ``torch.SymInt``) as a torch tensor.

    Args:
        value: NumPy array or torch tensor (returned as is).
        dtype: NumPy dtype to cast a numeric array to first, or None.
    """
    if not is_host(value):
        return value
    if value.dtype == object:  # symbolic sizes: torch.tensor traces them as sym_size ops
        return torch.tensor(value.tolist(), dtype=torch.int64)
    if dtype is not None:
        value = value.astype(dtype, copy=False)
    return torch.from_numpy(np.ascontiguousarray(value).copy())
