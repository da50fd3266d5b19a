"""The Core ML delegate's op-support table: data, with a reason for every "no".

Each :class:`~unified.delegate.OpSupport` entry names an ONNX op (default
domain), the opsets it is handled at, the element types of its first input,
and constraint checks; a check returns None (fine) or the reason the node is
declined. Every op here has a lowering in :mod:`.ops_nn` or
:mod:`.ops_tensor` (a test holds the two tables equal).

Before the table, :func:`common_reason` applies what holds for every node:
Core ML tensors are fp32, fp16, int32 or bool inside an ML Program (int64 is
narrowed to int32; there is no float64, int8 or string here), of known rank at
most 5 (Core ML's limit for ML Program tensors).
"""

from __future__ import annotations

from onnx import TensorProto as T

from unified.delegate import OpSupport, attr_in
from unified.graph import NodeView
from unified.onnx import dtype_name, resolve_pads, window

__all__ = ["OP_SUPPORT", "QUANTIZED_OPS", "common_reason", "MAX_RANK", "pool_output_size"]

MAX_RANK = 5

FLOAT = frozenset({T.FLOAT, T.FLOAT16})
NUMERIC = FLOAT | {T.INT32, T.INT64}
ANY = NUMERIC | {T.BOOL}
_ALLOWED = ANY


QUANTIZED_OPS = frozenset({
    "QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "QLinearConv", "QLinearMatMul",
    "ConvInteger", "MatMulInteger", "QLinearAdd", "QLinearMul", "QLinearAveragePool", "QLinearConcat",
})
"""Quantized ONNX ops the Core ML delegate declines at planning time."""


def common_reason(node: NodeView) -> str | None:
    """Why no Core ML op can take this node whatever its type, or None."""
    if node.op_type in QUANTIZED_OPS:
        return (
            f"{node.op_type}: the Core ML delegate does not lower quantized ONNX ops (QDQ, QLinear*, *Integer); "
            "its ML Programs hold float32/float16/int32/bool tensors (MIL quantize/dequantize and "
            "constexpr-dequantized weights are not wired); run the QDQ model's float form or another delegate"
        )
    values = node.inputs + node.outputs
    if node.op_type == "Dropout":  # the mask output is produced as a constant (all kept) from the input's shape
        values = node.inputs + node.outputs[:1]
    for t in values:
        if not t.name:
            continue
        if t.elem_type not in _ALLOWED:
            return (
                f"value '{t.name}' has type {dtype_name(t.elem_type)}; Core ML ML Programs hold "
                "float32, float16, int32 (int64 narrowed to int32) and bool"
            )
        if t.shape is None:
            return f"value '{t.name}' has unknown rank; Core ML needs the rank at compile time"
        if len(t.shape) > MAX_RANK:
            return f"value '{t.name}' has rank {len(t.shape)}; Core ML tensors have rank <= {MAX_RANK}"
        if 0 in t.shape and t.const is None and not t.is_initializer:  # empty constants: omitted roi/scales
            return f"value '{t.name}' has shape {list(t.shape)}; Core ML tensors have no zero-size dims"
    return None


# --- constraint builders ------------------------------------------------------

def const_input(i: int, what: str):
    """Input ``i`` (when present) must be an initializer or constant."""

    def check(v: NodeView) -> str | None:
        if i >= len(v.inputs) or not v.inputs[i].name:
            return None
        t = v.inputs[i]
        if t.const is None and not t.is_initializer:
            return f"{v.op_type} {what} (input {i}) must be a constant initializer for Core ML"
        return None

    return check


def known_at_compile(*slots: int, what: str):
    """Inputs ``slots`` (when present) must be known when the partition is compiled.

    Core ML programs have static shapes here (``static_shapes``): a value the
    lowering reads as a number (a Reshape shape, Slice starts, axes, ...) is
    fine when it is a constant or *shape-derived* (``TensorInfo.shape_derived``:
    computed from tensor shapes only, so the core folds it into an initializer
    before ``compile()``); a value read from tensor data is declined.
    """

    def check(v: NodeView) -> str | None:
        for i in slots:
            if i >= len(v.inputs) or not v.inputs[i].name:
                continue
            t = v.inputs[i]
            if t.const is None and not t.is_initializer and not t.shape_derived:
                return (
                    f"{v.op_type} {what} (input {i} '{t.name}') comes from tensor data; Core ML needs it at "
                    "compile time (a constant, or computed from tensor shapes only)"
                )
        return None

    return check


def rank_between(lo: int, hi: int, slot: int = 0):
    def check(v: NodeView) -> str | None:
        shape = v.inputs[slot].shape
        if shape is not None and not lo <= len(shape) <= hi:
            return f"{v.op_type} input rank {len(shape)} not supported by Core ML (supported: {lo}..{hi})"
        return None

    return check


def no_output(i: int, what: str):
    def check(v: NodeView) -> str | None:
        if i < len(v.outputs) and v.outputs[i].name:
            return f"{v.op_type} output {i} ({what}) is not produced by the Core ML lowering"
        return None

    return check


def _float_only_division(v: NodeView) -> str | None:
    if v.inputs[0].elem_type in (T.INT32, T.INT64):
        return "integer Div truncates toward zero in ONNX; Core ML's floor_div rounds down (differs for negatives)"
    return None


def _no_dilated_pool(v: NodeView) -> str | None:
    if any(d != 1 for d in v.attr("dilations") or []):
        return f"{v.op_type} with dilations {list(v.attr('dilations'))} not supported by Core ML pooling"
    return None


def _pool_storage_order(v: NodeView) -> str | None:
    if v.attr("storage_order", 0):
        return "MaxPool storage_order=1 only affects the Indices output, which Core ML does not produce"
    return None


def pool_output_size(size: int, kernel: int, stride: int, begin: int, end: int, ceil_mode: bool) -> int:
    """ONNX MaxPool/AveragePool output size of one spatial axis (explicit pads, no dilation).

    ``floor`` or ``ceil`` of ``(size + begin + end - kernel) / stride``, plus 1;
    with ``ceil_mode`` a last window that would start past the input and its
    begin padding is dropped (ONNX reference ``_pool_get_output_shape_explicit_padding``,
    the same rule as PyTorch). MIL's own shape rule drops that window only when
    the axis is padded, and ONNX shape inference (onnx 1.2x) not at all when
    the axis is unpadded, hence the explicit computation here.
    """
    span = size + begin + end - kernel
    out = (-(-span // stride) if ceil_mode else span // stride) + 1
    if ceil_mode and (out - 1) * stride >= size + begin:
        out -= 1
    return out


def _ceil_mode(v: NodeView) -> str | None:
    # Lowered as floor pooling with extra end padding (ops_nn._ceil_as_padding), which needs the
    # spatial dims at compile time and cannot keep count_include_pad=1 averages exact.
    if not v.attr("ceil_mode", 0):
        return None
    if v.attr("auto_pad", "NOTSET") in ("SAME_UPPER", "SAME_LOWER"):
        return f"{v.op_type} ceil_mode=1 with auto_pad={v.attr('auto_pad')} not supported by Core ML"
    win = window(v.attributes, v.attr("kernel_shape") or [])
    kernel, strides, k = win.kernel, win.strides, len(win.kernel)
    begins, ends = resolve_pads(v.attributes, (), win)  # auto_pad is NOTSET or VALID here
    spatial = (v.inputs[0].shape or ())[2:]
    declared = (v.outputs[0].shape or ())[2:]
    static = len(spatial) == k and all(isinstance(d, int) for d in spatial)
    if static and len(declared) == k:
        sizes = [pool_output_size(spatial[i], kernel[i], strides[i], begins[i], ends[i], True) for i in range(k)]
        if any(isinstance(d, int) and d != s for d, s in zip(declared, sizes)):
            return (
                f"{v.op_type} ceil_mode=1: the declared output dims {list(declared)} differ from the operator's "
                f"{sizes} (a last window starting past the input is dropped)"
            )
    elif not static and any(kernel[i] < strides[i] + ends[i] for i in range(k)):
        return (
            f"{v.op_type} ceil_mode=1 with kernel < stride + end pad needs static spatial dims on Core ML "
            "(ONNX shape inference and the operator may disagree on the last window)"
        )
    if v.op_type == "AveragePool" and v.attr("count_include_pad", 0):
        if not static:
            return "AveragePool ceil_mode=1 with count_include_pad=1 needs static spatial dims on Core ML"
        for i in range(k):
            span = spatial[i] + begins[i] + ends[i] - kernel[i]
            if span % strides[i] and (span // strides[i] + 1) * strides[i] < spatial[i] + begins[i]:
                return (
                    "AveragePool ceil_mode=1 with count_include_pad=1 adds a partial window; Core ML would "
                    "count its padding in the average"
                )
    return None


def _pad_modes(v: NodeView) -> str | None:
    mode = v.attr("mode", "constant")
    pads = v.attr("pads") if v.opset < 11 else (v.inputs[1].const if len(v.inputs) > 1 else None)
    if pads is None:
        return "Pad pads must be a constant initializer for Core ML"
    pads = [int(p) for p in pads]
    if any(p < 0 for p in pads):
        return f"Pad with negative pads {pads} (cropping) not supported by Core ML"
    if mode != "constant":
        rank = v.inputs[0].rank or 0
        k = len(pads) // 2
        axes = list(range(rank))
        if v.opset >= 18 and len(v.inputs) > 3 and v.inputs[3].const is not None:
            axes = [int(a) % rank for a in v.inputs[3].const]
        padded = [a for i, a in enumerate(axes) if pads[i] or pads[i + k]]
        if any(a < rank - 2 for a in padded):
            return f"Pad mode={mode!r} pads only the last two axes on Core ML (padded axes: {padded})"
    return None


def _resize(v: NodeView) -> str | None:
    # The lowering reads the output size from the (specialized) static shapes; the scale that ONNX
    # uses for the coordinate transform must then equal out/in exactly.
    x, y = v.inputs[0], v.outputs[0]
    if x.rank != 4:
        return "Resize needs a 4-D (N, C, H, W) input on Core ML"
    scales = None
    if v.opset >= 11 and len(v.inputs) > 2 and v.inputs[2].name and v.inputs[2].const is not None:
        scales = [float(s) for s in v.inputs[2].const.reshape(-1)] or None
    elif v.opset >= 11 and len(v.inputs) > 2 and v.inputs[2].name and not v.inputs[2].shape_derived and not (
            x.is_static and y.is_static and all(y.shape[a] % x.shape[a] == 0 for a in (2, 3))):
        # ONNX maps coordinates with the scale itself, Core ML with out/in: a scale fed at run time is only
        # trusted for integer upscales, where it is the ratio (found by mil-numpy: onnx
        # test_resize_downsample_scales_linear, scale 0.6 for 4 -> 2 pixels)
        return ("Resize scales fed at run time need an integer upscale on Core ML (ONNX maps coordinates with "
                "the scale, Core ML resamples by the output size)")
    if x.is_static and y.is_static:
        if x.shape[:2] != y.shape[:2]:
            return "Resize of the batch or channel axis not supported by Core ML"
        sh, sw = y.shape[2] / x.shape[2], y.shape[3] / x.shape[3]
        if scales is not None and (scales[2] != sh or scales[3] != sw):
            return (f"Resize scales {scales[2:]} differ from output/input sizes ({sh:g}, {sw:g}); Core ML "
                    "resamples by the sizes")
    elif scales is not None and len(scales) == 4:
        if scales[:2] != [1.0, 1.0]:
            return "Resize of the batch or channel axis not supported by Core ML"
        if any(s != int(s) for s in scales[2:]):
            return "Resize with symbolic spatial dims needs integer scales on Core ML"
        sh, sw = scales[2], scales[3]
    else:
        return "Resize needs static input/output shapes or constant integer scales on Core ML"
    mode = v.attr("mode", "nearest")
    coord = v.attr("coordinate_transformation_mode", "half_pixel")
    if v.attr("antialias", 0):
        return "Resize antialias=1 not supported by Core ML"
    if mode == "nearest":
        if sh != int(sh) or sw != int(sw) or sh < 1 or sw < 1:
            return f"Resize nearest needs integer upscale factors on Core ML (got {sh:g}, {sw:g})"
        if coord == "align_corners" or coord == "tf_crop_and_resize":
            return f"Resize nearest with coordinate_transformation_mode={coord!r} not supported by Core ML"
        nearest = v.attr("nearest_mode", "round_prefer_floor")
        if coord == "asymmetric" and nearest not in ("floor",):
            return "Resize nearest asymmetric needs nearest_mode='floor' on Core ML"
        # Core ML reads floor(i / scale); half_pixel rounding to nearest gives the same for integer scales,
        # floor/ceil do not (found by mil-numpy: onnx test_resize_upsample_sizes_nearest_ceil_half_pixel)
        if coord in ("half_pixel", "pytorch_half_pixel") and nearest not in ("round_prefer_floor",
                                                                             "round_prefer_ceil"):
            return (f"Resize nearest {coord} with nearest_mode={nearest!r} not supported by Core ML "
                    "(supported: round_prefer_floor, round_prefer_ceil)")
        if coord not in ("asymmetric", "half_pixel", "pytorch_half_pixel"):
            return f"Resize nearest with coordinate_transformation_mode={coord!r} not supported by Core ML"
        return None
    if mode == "linear":
        if coord not in ("align_corners", "asymmetric", "half_pixel", "pytorch_half_pixel"):
            return f"Resize linear coordinate_transformation_mode={coord!r} not supported by Core ML"
        if coord == "pytorch_half_pixel" and x.is_static and y.is_static and any(
                y.shape[a] == 1 < x.shape[a] for a in (2, 3)):
            # pytorch_half_pixel samples pixel 0 for a 1-pixel output, Core ML's UNALIGN_CORNERS the centre
            # (found by mil-numpy: onnx test_resize_downsample_sizes_linear_pytorch_half_pixel)
            return "Resize linear pytorch_half_pixel to a 1-pixel output axis not supported by Core ML"
        return None
    return f"Resize mode={mode!r} not supported by Core ML (supported: nearest, linear)"


def _layer_norm_params(v: NodeView) -> str | None:
    rank = v.inputs[0].rank or 0
    axis = v.attr("axis", -1)
    axis = axis + rank if axis < 0 else axis
    if not all(isinstance(d, int) for d in (v.inputs[0].shape or ())[axis:]):
        return "LayerNormalization needs static normalized dims on Core ML"
    return None


def _conv_transpose(v: NodeView) -> str | None:
    # The lowering computes the output shape from the spatial dims: static once specialized
    # (static_shapes), unless the shape itself depends on data.
    if not v.inputs[0].static_when_specialized:
        return "ConvTranspose needs static channel and spatial dims on Core ML (they depend on data here)"
    return None


def _softmax_legacy(v: NodeView) -> str | None:
    if v.opset < 13:
        rank = v.inputs[0].rank or 0
        axis = v.attr("axis", 1)
        axis = axis + rank if axis < 0 else axis
        if axis != rank - 1 and not all(isinstance(d, int) for d in (v.inputs[0].shape or ())[axis:]):
            return f"{v.op_type} (opset < 13) over axis {axis} needs static trailing dims on Core ML"
    return None


def _gather_nd(v: NodeView) -> str | None:
    if v.attr("batch_dims", 0) and v.opset < 12:
        return "GatherND batch_dims needs opset >= 12"
    return None


_split = known_at_compile(1, what="split sizes")
_axes_const = known_at_compile(1, what="axes")
def _bool_inputs(v: NodeView) -> str | None:
    if any(t.name and t.elem_type != T.BOOL for t in v.inputs):
        return f"{v.op_type} needs bool inputs"
    return None


def _cast_to(v: NodeView) -> str | None:
    # Cast's target is its "to" attribute; CastLike's is its second input's element type.
    to = v.attr("to") if v.op_type == "Cast" else v.inputs[1].elem_type
    if to not in ANY:
        return (f"{v.op_type} to {dtype_name(to)} not supported by Core ML "
                "(supported: float, float16, int32, int64, bool)")
    return None


_cumsum_axis = known_at_compile(1, what="axis")


def _dropout_inference(v: NodeView) -> str | None:
    # Lowered as inference Dropout (the input unchanged); training mode draws a random mask.
    if v.opset >= 12 and len(v.inputs) > 2 and v.inputs[2].name:
        t = v.inputs[2]
        if t.const is None:
            return "Dropout training_mode (input 2) comes from tensor data; Core ML lowers inference Dropout only"
        if bool(t.const.reshape(-1)[0]):
            return "Dropout training_mode=True (random mask) not supported by Core ML"
    if v.opset < 7 and not v.attr("is_test", 0):
        return "Dropout is_test=0 (training) not supported by Core ML"
    return None


def _e(op: str, dtypes=FLOAT, *constraints, since: int = 1, until: int | None = None) -> OpSupport:
    return OpSupport(op, since=since, until=until, dtypes=frozenset(dtypes), constraints=tuple(constraints))


_AUTO_PAD = attr_in("auto_pad", ("NOTSET", "VALID", "SAME_UPPER", "SAME_LOWER"), "NOTSET")
_LAST_INDEX = attr_in("select_last_index", (0,), 0)

OP_SUPPORT: tuple[OpSupport, ...] = (
    # convolution and pooling (MIL conv / conv_transpose / max_pool / avg_pool)
    _e("Conv", FLOAT, rank_between(3, 5), _AUTO_PAD),
    _e("ConvTranspose", FLOAT, rank_between(3, 5), const_input(1, "weight"), const_input(2, "bias"),
       _AUTO_PAD, _conv_transpose),
    _e("MaxPool", FLOAT, rank_between(3, 5), _AUTO_PAD, _no_dilated_pool, _pool_storage_order, _ceil_mode,
       no_output(1, "Indices")),
    _e("AveragePool", FLOAT, rank_between(3, 5), _AUTO_PAD, _no_dilated_pool, _ceil_mode),
    _e("GlobalAveragePool", FLOAT, rank_between(3, 5)),
    _e("GlobalMaxPool", FLOAT, rank_between(3, 5)),
    # normalization
    _e("BatchNormalization", FLOAT, rank_between(3, 5), *(const_input(i, w) for i, w in (
        (1, "scale"), (2, "bias"), (3, "mean"), (4, "var"))), attr_in("training_mode", (0,), 0),
       no_output(1, "running_mean"), no_output(2, "running_var")),
    _e("InstanceNormalization", FLOAT, rank_between(3, 5), const_input(1, "scale"), const_input(2, "B")),
    _e("LayerNormalization", FLOAT, const_input(1, "scale"), const_input(2, "B"), _layer_norm_params,
       no_output(1, "Mean"), no_output(2, "InvStdDev"), since=17),
    _e("LRN", FLOAT, rank_between(3, 4)),
    # matrix products
    _e("MatMul", FLOAT, rank_between(1, 5, 0), rank_between(1, 5, 1)),
    _e("Gemm", FLOAT, rank_between(2, 2)),
    # activations and softmax
    *(_e(op, FLOAT) for op in (
        "Relu", "Sigmoid", "Tanh", "Softplus", "Softsign", "LeakyRelu", "Elu", "Selu", "ThresholdedRelu",
        "HardSigmoid", "HardSwish", "PRelu", "Mish", "Erf", "Exp", "Log", "Sqrt", "Reciprocal", "Floor",
        "Ceil", "Sin", "Cos", "Tan", "IsNaN")),
    _e("Gelu", FLOAT, attr_in("approximate", ("none", "tanh"), "none"), since=20),
    _e("Softmax", FLOAT, _softmax_legacy),
    _e("LogSoftmax", FLOAT, _softmax_legacy),
    # elementwise arithmetic and logic
    *(_e(op, NUMERIC) for op in ("Add", "Sub", "Mul", "Sum", "Max", "Min", "Abs", "Neg", "Sign", "Clip")),
    _e("Div", NUMERIC, _float_only_division),
    _e("Pow", FLOAT),
    _e("Mean", FLOAT),
    *(_e(op, ANY) for op in ("Equal",)),
    *(_e(op, NUMERIC) for op in ("Greater", "GreaterOrEqual", "Less", "LessOrEqual")),
    *(_e(op, {T.BOOL}, _bool_inputs) for op in ("And", "Or", "Xor", "Not")),
    _e("Where", {T.BOOL}),
    _e("Cast", ANY, _cast_to),
    _e("CastLike", ANY, _cast_to, since=15),
    _e("Identity", ANY),
    _e("Dropout", FLOAT, _dropout_inference),
    # shape and layout
    _e("Shape", ANY),
    _e("Size", ANY),
    _e("Reshape", ANY, known_at_compile(1, what="shape")),
    _e("Flatten", ANY),
    _e("Transpose", ANY),
    _e("Squeeze", ANY, _axes_const),
    _e("Unsqueeze", ANY, _axes_const),
    _e("Concat", ANY),
    _e("Split", ANY, _split),
    _e("Slice", ANY, known_at_compile(1, 2, 3, 4, what="starts/ends/axes/steps")),
    _e("Expand", ANY, known_at_compile(1, what="shape")),
    _e("Tile", ANY, known_at_compile(1, what="repeats")),
    _e("ConstantOfShape", {T.INT64}, known_at_compile(0, what="shape")),
    _e("Range", NUMERIC - {T.FLOAT16}, known_at_compile(0, 1, 2, what="start/limit/delta")),
    _e("Pad", ANY - {T.BOOL}, attr_in("mode", ("constant", "reflect", "edge"), "constant"), _pad_modes),
    _e("Resize", FLOAT, _resize, since=11),
    # indexing
    _e("Gather", ANY),
    _e("GatherElements", ANY),
    _e("GatherND", ANY, _gather_nd),
    # reductions
    *(_e(op, NUMERIC, _axes_const) for op in ("ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd")),
    *(_e(op, FLOAT, _axes_const) for op in (
        "ReduceMean", "ReduceL1", "ReduceL2", "ReduceSumSquare", "ReduceLogSumExp")),
    _e("ArgMax", NUMERIC, _LAST_INDEX),
    _e("ArgMin", NUMERIC, _LAST_INDEX),
    _e("CumSum", NUMERIC, _cumsum_axis),
)
