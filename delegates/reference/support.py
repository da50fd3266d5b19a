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


def _quant_type(slot: int, allowed: frozenset[int], what: str):
    def check(node: NodeView) -> str | None:
        if len(node.inputs) > slot and node.inputs[slot].name:
            t = node.inputs[slot].elem_type
            if t and t not in allowed:
                return f"{node.op_type} {what} dtype {dtype_name(t)} not handled (int8, uint8)"
        return None

    return check


def _no_blocks(node: NodeView) -> str | None:
    if node.attr("block_size", 0):
        return f"{node.op_type} blocked quantization (block_size={node.attr('block_size')}) not handled"
    out = node.attr("output_dtype", 0)
    if out and out not in _QUANT:
        return f"QuantizeLinear output_dtype {dtype_name(out)} not handled (int8, uint8)"
    return None


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
    # quantization
    _e("QuantizeLinear", {T.FLOAT}, _quant_type(2, _QUANT, "zero point"), _no_blocks, since=10),
    _e("DequantizeLinear", _QUANT | {T.INT32}, _no_blocks, since=10),
)
