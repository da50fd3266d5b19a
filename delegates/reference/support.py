"""What the reference delegate claims: one :class:`OpSupport` entry per op,
each with constraint checks that return None or the reason for declining.

The table lists exactly the ops of ``kernels.KERNELS``; a test keeps the two
in step.
"""

from __future__ import annotations

from onnx import TensorProto as T

from unified.delegate import OpSupport, attr_absent, attr_in
from unified.graph import NodeView
from unified.onnx import dtype_name

__all__ = ["OP_SUPPORT", "FLOATS"]

FLOATS = frozenset({T.FLOAT, T.FLOAT16, T.DOUBLE})
_INTS = frozenset({T.INT8, T.UINT8, T.INT16, T.INT32, T.INT64})
_NUMERIC = FLOATS | _INTS
_QUANT = frozenset({T.INT8, T.UINT8})


def _rank_between(lo: int, hi: int):
    def check(node: NodeView) -> str | None:
        r = node.inputs[0].rank
        if r is not None and not lo <= r <= hi:
            return f"{node.op_type} input rank {r} not handled (handled: {lo}..{hi})"
        return None

    return check


def _no_output(slot: int, what: str):
    def check(node: NodeView) -> str | None:
        if len(node.outputs) > slot and node.outputs[slot].name:
            return f"{node.op_type} output {slot} ({what}) is not produced by the reference kernels"
        return None

    return check


def _dropout_inference(node: NodeView) -> str | None:
    if len(node.inputs) > 2 and node.inputs[2].name:
        t = node.inputs[2]
        if t.const is None or bool(t.const.reshape(-1)[0]):
            return "Dropout training_mode input is not a constant false (inference only)"
    return None


def _no_crop_and_resize(node: NodeView) -> str | None:
    if node.attr("coordinate_transformation_mode", "half_pixel") == "tf_crop_and_resize":
        return "Resize coordinate_transformation_mode='tf_crop_and_resize' not supported"
    return None


_Q_OUT = frozenset({T.INT8, T.UINT8, T.INT16, T.UINT16, T.INT4, T.UINT4})
_DQ_IN = _Q_OUT | {T.INT32, T.FLOAT4E2M1}
_SCALES = frozenset({T.FLOAT, T.FLOAT16, T.FLOAT8E8M0})


def _names(types) -> str:
    return ", ".join(sorted(dtype_name(t) for t in types))


def _quantize_output(node: NodeView) -> str | None:
    """QuantizeLinear's output type (zero point's, else ``output_dtype``) is an integer type."""
    t = node.outputs[0].elem_type if node.outputs else 0
    if t and t not in _Q_OUT:
        return f"QuantizeLinear output dtype {dtype_name(t)} not handled ({_names(_Q_OUT)})"
    if node.attr("precision", 0):
        return "QuantizeLinear precision attribute not handled"
    return None


def _dequantize_types(node: NodeView) -> str | None:
    """DequantizeLinear data and scale types; an output that is a float type NumPy holds."""
    x, s = node.inputs[0].elem_type, node.inputs[1].elem_type if len(node.inputs) > 1 else 0
    if x and x not in _DQ_IN:
        return f"DequantizeLinear input dtype {dtype_name(x)} not handled ({_names(_DQ_IN)})"
    if s and s not in _SCALES:
        return f"DequantizeLinear scale dtype {dtype_name(s)} not handled ({_names(_SCALES)})"
    out = node.outputs[0].elem_type if node.outputs else 0
    if out and out not in FLOATS:
        return f"DequantizeLinear output dtype {dtype_name(out)} not handled (set output_dtype to float or float16)"
    return None


def _per_tensor(*slots: int):
    def check(node: NodeView) -> str | None:
        for i in slots:
            t = node.inputs[i] if len(node.inputs) > i else None
            if t is not None and t.name and t.shape is not None and any(d != 1 for d in t.shape):
                return f"{node.op_type} input {i} ('{t.name}') must be per tensor (one element); it has shape {t.shape}"
        return None

    return check


def _tensor_input(node: NodeView) -> str | None:
    t = node.inputs[0] if node.inputs else None
    if t is not None and t.name and not t.elem_type:
        return f"{node.op_type} input '{t.name}' is not a tensor (sequence or optional types not handled)"
    return None


_INFERENCE = attr_in("training_mode", (0,), 0)


def _e(op: str, dtypes=FLOATS, *constraints, since: int = 1) -> OpSupport:
    return OpSupport(op, dtypes=frozenset(dtypes), constraints=tuple(constraints), since=since)


OP_SUPPORT: tuple[OpSupport, ...] = (
    # MAC ops: the systolic array
    _e("Conv", FLOATS, _rank_between(3, 5)),
    _e("ConvTranspose", FLOATS, _rank_between(3, 5), attr_in("auto_pad", ("NOTSET",), "NOTSET"),
       attr_absent("output_shape", "pads and output_padding")),
    _e("Gemm"),
    _e("MatMul"),
    # element-wise: the vector unit
    _e("Add", _NUMERIC),
    _e("Sub", _NUMERIC),
    _e("Mul", _NUMERIC),
    _e("Div", _NUMERIC),
    _e("Sum"),
    _e("Relu"),
    _e("Clip"),
    _e("Sigmoid"),
    _e("HardSigmoid"),
    _e("HardSwish"),
    _e("Tanh"),
    _e("LeakyRelu"),
    _e("Erf"),
    _e("Gelu", FLOATS, attr_in("approximate", ("none", "tanh"), "none")),
    # windows and normalization
    _e("MaxPool", FLOATS, _rank_between(3, 5), _no_output(1, "Indices")),
    _e("AveragePool", FLOATS, _rank_between(3, 5)),
    _e("GlobalAveragePool", FLOATS, _rank_between(3, 5)),
    _e("ReduceMean"),
    _e("ReduceSum"),
    _e("ReduceMax"),
    _e("Softmax"),
    _e("LayerNormalization"),
    _e("BatchNormalization", FLOATS, _INFERENCE, attr_in("spatial", (1,), 1), _no_output(1, "running mean")),
    _e("LRN"),
    _e("Dropout", FLOATS, _INFERENCE, _dropout_inference),
    # layout (any dtype)
    _e("Reshape", ()),
    _e("Flatten", ()),
    _e("Transpose", ()),
    _e("Concat", ()),
    _e("Slice", ()),
    _e("Squeeze", ()),
    _e("Unsqueeze", ()),
    _e("Pad", (), attr_in("mode", ("constant", "reflect", "edge", "wrap"), "constant")),
    _e("Resize", (), attr_in("mode", ("nearest",), "nearest"), _no_crop_and_resize, attr_in("antialias", (0,), 0),
       attr_in("keep_aspect_ratio_policy", ("stretch",), "stretch")),
    _e("Identity", (), _tensor_input),
    _e("ConstantOfShape", ()),
    # quantization (ops_quant.py); QDQ groups run in integers (qdq.py)
    _e("QuantizeLinear", {T.FLOAT, T.FLOAT16}, _quantize_output, since=10),
    _e("DequantizeLinear", (), _dequantize_types, since=10),
    _e("DynamicQuantizeLinear", {T.FLOAT}, since=11),
    _e("QLinearConv", _QUANT, _rank_between(3, 5), _per_tensor(1, 2, 6, 7), since=10),
    _e("QLinearMatMul", _QUANT, _per_tensor(1, 2, 6, 7), since=10),
    _e("ConvInteger", _QUANT, _rank_between(3, 5), _per_tensor(2), since=10),
    _e("MatMulInteger", _QUANT, since=10),
)
