"""The tflite delegate's op-support table: what it converts, with the checks.

Each entry is an :class:`~unified.delegate.OpSupport`; its constraints return
None (fine) or the reason the node is declined. Every op listed here has a
converter in ``ops_*.py`` and a unit test against ONNX Runtime in
``tests/tflite``. Checks common to all entries (known ranks, shapes that are
static once the model's input dims are fixed, TFLite-typed values) run first,
in :func:`common_checks`.
"""

from __future__ import annotations

import math

import numpy as np
from onnx import TensorProto as T

from unified.delegate import OpSupport, attr_absent, attr_in
from unified.graph import NodeView

__all__ = ["OP_SUPPORT", "common_checks"]

F32 = frozenset({T.FLOAT})
NUM = frozenset({T.FLOAT, T.INT32, T.INT64})
ANY_TFL = frozenset({T.FLOAT, T.INT32, T.INT64, T.INT8, T.UINT8, T.BOOL, T.INT16})
Q8 = frozenset({T.INT8, T.UINT8})


def common_checks(node: NodeView) -> str | None:
    """Known ranks, shapes static once the model's input dims are fixed, TFLite dtypes.

    The delegate is ``static_shapes``: a symbolic dim (str or None) is fine
    when the value's shape becomes static at specialization
    (``TensorInfo.static_when_specialized``); the core compiles the partition
    once per concrete input-shape signature. A value whose shape depends on
    tensor data, a value of unknown rank, and a negative dim are declined.
    """
    for k, t in enumerate(node.inputs + node.outputs):
        if not t.name or (node.op_type == "Dropout" and k == len(node.inputs) + 1):
            continue  # Dropout's mask output is a constant of ones, whatever its shape
        if t.shape is None:
            return (f"{node.op_type} value '{t.name}' has an unknown rank; the tflite delegate needs every "
                    "rank at planning time")
        if any(isinstance(d, int) and d < 0 for d in t.shape):
            return (f"{node.op_type} value '{t.name}' has shape {list(t.shape)} with a negative dim; the tflite "
                    "delegate needs every dim known (pin it with free_dimensions)")
        if not t.is_static and not t.static_when_specialized:
            return (f"{node.op_type} value '{t.name}' has shape {list(t.shape)}, which depends on tensor data "
                    "(not only on the model's input dims); the tflite delegate compiles static shapes only")
        if t.elem_type and t.elem_type not in ANY_TFL:
            return f"{node.op_type} value '{t.name}' has dtype {t.type_str}, which TFLite kernels here do not take"
    return None


def known_at_compile_time(t) -> bool:
    """A constant, an initializer, or shape arithmetic that folds to one at specialization."""
    return t.is_initializer or t.const is not None or t.shape_derived


def _ints(dims) -> bool:
    return dims is not None and all(isinstance(d, int) for d in dims)


# --- constraint factories ------------------------------------------------------------


def rank(*ranks: int, slot: int = 0):
    def check(n: NodeView) -> str | None:
        r = n.inputs[slot].rank if slot < len(n.inputs) else None
        if r not in ranks:
            return f"{n.op_type} input {slot} has rank {r}; the tflite delegate handles rank {_alts(ranks)}"
        return None
    return check


def max_rank(limit: int):
    def check(n: NodeView) -> str | None:
        r = max((t.rank or 0) for t in n.inputs + n.outputs if t.name)
        return None if r <= limit else f"{n.op_type} on rank {r}; TFLite broadcasting kernels take rank <= {limit}"
    return check


def const(*slots: int, what: str = "input"):
    """Inputs that must be constants (initializers) at compile time."""
    def check(n: NodeView) -> str | None:
        for s in slots:
            if s < len(n.inputs) and n.inputs[s].name and not known_at_compile_time(n.inputs[s]):
                return (f"{n.op_type} {what} {s} ('{n.inputs[s].name}') is computed from tensor data; TFLite needs "
                        "it at compile time (a constant, or shape arithmetic on the model's input dims)")
        return None
    return check


def all_ones(name: str):
    def check(n: NodeView) -> str | None:
        v = n.attr(name)
        if v is not None and any(int(x) != 1 for x in v):
            return f"{n.op_type} with {name}={list(v)} not supported (only 1s)"
        return None
    return check


def single_output(n: NodeView) -> str | None:
    extra = [t.name for t in n.outputs[1:] if t.name]
    return f"{n.op_type} optional outputs {extra} are not produced by TFLite" if extra else None


def _alts(values) -> str:
    return " or ".join(str(v) for v in values)


# --- op-specific checks ----------------------------------------------------------------


def conv_groups(n: NodeView) -> str | None:
    group = int(n.attr("group", 1))
    w = n.inputs[1].shape
    depthwise = group > 1 and w and w[1] == 1 and n.inputs[0].shape and group == n.inputs[0].shape[1]
    if group > 1 and not depthwise and not n.inputs[1].is_initializer:
        return "grouped (not depthwise) Conv needs a constant weight (it is split per group at compile time)"
    dil = n.attr("dilations")
    if group > 1 and w and w[1] != 1 and dil is not None and any(int(d) != 1 for d in dil):
        return "Conv with dilations and groups>1 (not depthwise) not supported"
    return None


def pool_ok(n: NodeView) -> str | None:
    if n.attr("storage_order", 0):
        return f"{n.op_type} with storage_order=1 not supported"
    return None


def lrn_ok(n: NodeView) -> str | None:
    return None if int(n.attr("size", 1)) % 2 == 1 else "LRN with an even size has no TFLite equivalent (radius)"


def resize_ok(n: NodeView) -> str | None:
    x, y = n.inputs[0].shape, n.outputs[0].shape
    if _scales_batch_or_channels(n, x, y):
        return "Resize that scales the batch or channel dim not supported (spatial only)"
    mode = n.attr("mode", "nearest")
    if mode not in ("nearest", "linear"):
        return f"Resize mode '{mode}' not supported (nearest, linear)"
    ctm = n.attr("coordinate_transformation_mode", "half_pixel" if n.op_type == "Resize" and n.opset >= 11
                 else "asymmetric")
    if n.attr("antialias", 0) or n.attr("exclude_outside", 0):
        return "Resize with antialias or exclude_outside not supported"
    if ctm == "pytorch_half_pixel" and (not _ints(y[2:]) or min(y[2:]) <= 1):
        return "Resize pytorch_half_pixel with an output dim of 1 not supported"
    if mode == "linear" and ctm not in ("half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric"):
        return f"Resize linear with coordinate_transformation_mode '{ctm}' not supported"
    if mode == "nearest":
        nm = n.attr("nearest_mode", "round_prefer_floor")
        ok = {("asymmetric", "floor"), ("half_pixel", "round_prefer_ceil"), ("pytorch_half_pixel", "round_prefer_ceil"),
              ("align_corners", "round_prefer_ceil")}
        if n.opset < 11:
            nm = "floor"
        if (ctm, nm) not in ok:
            return (f"Resize nearest with coordinate_transformation_mode '{ctm}' and nearest_mode '{nm}' has no "
                    "TFLite equivalent (supported: asymmetric+floor, half_pixel/align_corners+round_prefer_ceil)")
    return None


def _scales_batch_or_channels(n: NodeView, x, y) -> bool:
    """Whether a Resize may change dim 0 or 1: read from constant scales or sizes, else from the shapes."""
    scales = n.inputs[2].const if len(n.inputs) > 2 and n.inputs[2].name else None
    sizes = n.inputs[3].const if len(n.inputs) > 3 and n.inputs[3].name else None
    if n.op_type == "Upsample" or n.opset < 11:
        scales = n.inputs[1].const if len(n.inputs) > 1 else None
    if scales is not None and scales.size == len(x):
        return bool(np.any(scales.reshape(-1)[:2] != 1))
    if sizes is not None and sizes.size == len(x) and _ints(x[:2]):
        return [int(d) for d in sizes.reshape(-1)[:2]] != list(x[:2])
    return x[:2] != y[:2]


def gemm_ok(n: NodeView) -> str | None:
    if n.attr("transA", 0):
        return "Gemm with transA=1 not supported"
    c = n.inputs[2] if len(n.inputs) > 2 else None
    if c is not None and c.name and c.shape is not None and len(c.shape) == 2 and c.shape[0] != 1:
        return f"Gemm with a 2-D bias C of shape {c.shape} not supported (bias must broadcast over rows)"
    return None


def matmul_ok(n: NodeView) -> str | None:
    if any(t.rank is not None and t.rank < 2 for t in n.inputs[:2]):
        return "MatMul with a rank-1 operand not supported"
    return None


def clip_ok(n: NodeView) -> str | None:
    return const(1, 2, what="bound")(n)


def slice_ok(n: NodeView) -> str | None:
    return const(1, 2, 3, 4)(n)  # any non-zero step, either sign (STRIDED_SLICE)


def pad_ok(n: NodeView) -> str | None:
    mode = n.attr("mode", "constant")
    if mode not in ("constant", "reflect"):
        return f"Pad mode '{mode}' not supported (constant, reflect)"
    return const(1, 2, 3)(n)


def dropout_ok(n: NodeView) -> str | None:
    if len(n.inputs) > 2 and n.inputs[2].name:
        tm = n.inputs[2].const
        if tm is None or bool(tm.reshape(-1)[0]):
            return "Dropout with training_mode not known to be false is not converted"
    return None


def batchnorm_ok(n: NodeView) -> str | None:
    if n.attr("training_mode", 0):
        return "BatchNormalization in training mode not supported"
    return const(1, 2, 3, 4, what="parameter")(n) or single_output(n)


def qdq_ok(n: NodeView) -> str | None:
    reason = const(1, 2, what="quantization parameter")(n)
    if reason:
        return reason
    if n.attr("block_size", 0):
        return f"{n.op_type} with blocked quantization not supported"
    zp = n.inputs[2] if len(n.inputs) > 2 and n.inputs[2].name else None
    q = n.outputs[0] if n.op_type == "QuantizeLinear" else n.inputs[0]
    if n.op_type == "QuantizeLinear" and q.elem_type not in Q8:
        return f"QuantizeLinear to {q.type_str} not supported (int8, uint8)"
    if zp is not None and zp.elem_type not in Q8 and not n.inputs[0].is_initializer:
        return f"{n.op_type} zero point of {zp.type_str} not supported (int8, uint8)"
    return None


def cos_ok(n: NodeView) -> str | None:
    return None if known_at_compile_time(n.inputs[0]) else (
        "ConstantOfShape with a shape computed from tensor data not supported")


def finite_clip(n: NodeView) -> str | None:
    for k in ("min", "max"):
        v = n.attr(k)
        if v is not None and math.isnan(v):
            return f"Clip {k}=NaN not supported"
    return None


def _e(op: str, dtypes=F32, *constraints, since: int = 1) -> OpSupport:
    return OpSupport(op, since=since, dtypes=frozenset(dtypes), constraints=(common_checks, *constraints))


OP_SUPPORT: tuple[OpSupport, ...] = (
    # convolutions, pooling, normalization
    _e("Conv", F32, rank(3, 4), conv_groups),
    _e("ConvTranspose", F32, rank(4), const(1, 2, what="weight/bias"), all_ones("dilations"),
       attr_in("group", [1], 1), attr_absent("output_shape", "pads")),  # TRANSPOSE_CONV has no groups
    _e("BatchNormalization", F32, batchnorm_ok),
    _e("MaxPool", F32, rank(4), all_ones("dilations"), pool_ok, single_output),
    _e("AveragePool", F32, rank(4), all_ones("dilations")),
    _e("GlobalAveragePool", F32, rank(3, 4, 5)),
    _e("GlobalMaxPool", F32, rank(3, 4, 5)),
    _e("LRN", F32, rank(4), lrn_ok),
    _e("Resize", F32, rank(4), const(1, 2, 3), resize_ok, since=10),
    _e("LayerNormalization", F32, const(1, 2, what="scale/bias"), single_output),
    # matrix products
    _e("Gemm", F32, rank(2), gemm_ok),
    _e("MatMul", F32, matmul_ok, max_rank(5)),
    _e("Softmax", F32, max_rank(4)),
    _e("LogSoftmax", F32, max_rank(4)),
    # elementwise
    *[_e(op, NUM, max_rank(5)) for op in ("Add", "Sub", "Mul", "Sum", "Max", "Min")],
    _e("Div", frozenset({T.FLOAT, T.INT32}), max_rank(5)),  # TFLite DIV has no int64 kernel
    _e("Pow", F32, max_rank(5)),
    *[_e(op, F32) for op in ("Relu", "Sigmoid", "Tanh", "Exp", "Log", "Sqrt", "HardSwish", "Erf", "Floor", "Reciprocal",
                             "Ceil", "Sin", "Cos")],
    _e("Neg", NUM),
    _e("Abs", frozenset({T.FLOAT, T.INT32})),
    _e("Elu", F32, attr_in("alpha", [1.0], 1.0)),  # TFLite ELU has no alpha
    _e("Gelu", F32, since=20),
    _e("Clip", F32, clip_ok, finite_clip),
    _e("HardSigmoid", F32),
    _e("LeakyRelu", F32),
    _e("PRelu", F32, const(1, what="slope"), max_rank(4)),
    _e("IsNaN", F32),
    *[_e(op, NUM, max_rank(4)) for op in ("Equal", "Greater", "Less", "GreaterOrEqual", "LessOrEqual")],
    *[_e(op, frozenset({T.BOOL}), max_rank(4)) for op in ("And", "Or", "Not")],
    _e("Where", frozenset({T.BOOL}), max_rank(5)),
    _e("Cast", ANY_TFL),
    _e("QuantizeLinear", F32, qdq_ok, since=10),
    _e("DequantizeLinear", frozenset({T.INT8, T.UINT8, T.INT32}), qdq_ok, since=10),
    # data movement
    _e("Reshape", ANY_TFL, max_rank(6)),
    _e("Flatten", ANY_TFL, max_rank(6)),
    _e("Transpose", ANY_TFL, max_rank(6)),
    _e("Squeeze", ANY_TFL, const(1)),
    _e("Unsqueeze", ANY_TFL, const(1)),
    _e("Concat", ANY_TFL, max_rank(6)),
    _e("Split", ANY_TFL, const(1)),
    _e("Slice", ANY_TFL, slice_ok, max_rank(5)),
    _e("Pad", F32, pad_ok, max_rank(5)),
    _e("Gather", ANY_TFL, rank(0, 1, 2, slot=1)),
    _e("GatherND", ANY_TFL, const(1, what="indices"), attr_in("batch_dims", [0], 0)),
    _e("Expand", ANY_TFL, const(1), max_rank(5)),
    *[_e(op, F32, const(1, what="axes")) for op in ("ReduceMean", "ReduceMax", "ReduceMin", "ReduceSum",
                                                     "ReduceProd", "ReduceL2", "ReduceSumSquare")],
    _e("Dropout", ANY_TFL, dropout_ok),
    _e("Identity", ANY_TFL),
    _e("Shape", ANY_TFL),
    _e("ConstantOfShape", frozenset({T.INT64}), cos_ok),
)
