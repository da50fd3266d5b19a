"""QDQ groups as TFLite int8 ops: Conv (CONV_2D, DEPTHWISE_CONV_2D), an
inference BatchNormalization (DEPTHWISE_CONV_2D 1x1), Gemm / MatMul
(FULLY_CONNECTED), Add / Sum / Mul (ADD, MUL), MaxPool / AveragePool,
GlobalAveragePool (MEAN), Concat (CONCATENATION), Reshape / Flatten.

Each handler is tried before the float converter of its op (``Converter.run``)
and returns False, converting nothing, unless the node sits in a QDQ group it
can express exactly: every activation input from a per-tensor int8
DequantizeLinear (``quantize.dq_source``), the only reader of the output a
per-tensor int8 QuantizeLinear (``quantize.q_output``; a Relu / Clip(0, 6) in
between becomes the fused activation), weights on a symmetric per-channel int8
grid (``quantize.weight_int8``). The float converter then runs the group as
DEQUANTIZE, float op, QUANTIZE -- ONNX's own definition of it.

Rules from the TFLite int8 kernels (``tensorflow/lite/kernels``; XNNPACK's
``qs8`` operators follow them): MAX_POOL_2D, AVERAGE_POOL_2D, RESHAPE and
CONCATENATION keep their input's (scale, zero point), so an output the QDQ
graph quantizes differently gets a requantizing QUANTIZE (int8 -> int8);
PAD fills with the zero point (real 0.0); a max-pool pad uses -128.
Operator versions follow ``tensorflow/lite/tools/versioning/op_version.cc``
for int8 inputs.
"""

from __future__ import annotations

import numpy as np

from unified.onnx import attr_ints, resolve_pads, window

from .convert import NHWC, Converter, Value, register_int8
from .fuse import act_enum
from .ops_conv import _ceil_extra, _padding_mode
from .ops_shape import reshape_value
from .quantize import QOut, bias_int32, dq_source, q_output, same_quant, weight_int8

_I8 = np.int8
_VERSION = {"CONV_2D": 3, "DEPTHWISE_CONV_2D": 3, "FULLY_CONNECTED": 4, "ADD": 2, "MUL": 2, "AVERAGE_POOL_2D": 2,
            "MAX_POOL_2D": 2, "CONCATENATION": 2, "MEAN": 2, "PAD": 2, "PADV2": 2, "QUANTIZE": 2}


def _op(cx: Converter, name: str, ins, outs, options=None) -> None:
    cx.builder.op(name, ins, outs, options, version=_VERSION.get(name, 1))


def _define(cx: Converter, out: QOut, perm=None) -> Value:
    out.commit(cx)
    return cx.define(out.name, perm, dtype=_I8, quant=out.quant)


def _requantize(cx: Converter, src: int, tshape, quant: tuple) -> int:
    """QUANTIZE (int8 -> int8) of tensor ``src`` into a new tensor with ``quant``."""
    dst = cx.new(cx.uid("requant"), tshape, _I8, quant=quant)
    _op(cx, "QUANTIZE", [src], [dst])
    return dst


def _write(cx: Converter, op: str, ins, in_quant: tuple, out: QOut, perm, options=None) -> None:
    """Run ``op`` (which keeps its input's quantization) into ``out``, requantizing when they differ."""
    v = _define(cx, out, perm)
    if same_quant(in_quant, out.quant):
        _op(cx, op, ins, [v.tensor], options)
        return
    mid = cx.new(cx.uid(op.lower()), v.tshape(), _I8, quant=in_quant)
    _op(cx, op, ins, [mid], options)
    _op(cx, "QUANTIZE", [mid], [v.tensor])


def _pad(cx: Converter, x: Value, xt: int, pads: list[int], value: int | None = None) -> tuple[int, tuple]:
    """PAD an NHWC int8 tensor (zero point, i.e. real 0), or PADV2 with int8 ``value``; pads [t, l, b, r]."""
    n, h, w, c = x.tshape(NHWC)
    t, l, b, r = pads
    shape = (n, h + t + b, w + l + r, c)
    out = cx.new(cx.uid("pad"), shape, _I8, quant=x.quant)
    ins = [xt, cx.const("paddings", np.array([[0, 0], [t, b], [l, r], [0, 0]], np.int32))]
    if value is None:
        _op(cx, "PAD", ins, [out])
    else:
        _op(cx, "PADV2", ins + [cx.const("padval", np.array(value, _I8), quant=x.quant)], [out])
    return out, shape


# --- Conv / BatchNormalization ------------------------------------------------------


@register_int8("Conv")
def conv(cx: Converter, node, attrs) -> bool:
    """CONV_2D (group 1) or DEPTHWISE_CONV_2D (one input channel per group), int8
    with per-channel filters and an int32 bias; other groupings stay float."""
    x = dq_source(cx, node.input[0])
    if x is None or x.rank != 4 or cx.inp(node, 1).rank != 4:
        return False
    m, cg, kh, kw = cx.inp(node, 1).shape
    c, group = x.shape[1], int(attrs.get("group", 1))
    depthwise = group > 1 and group == c and cg == 1
    if group != 1 and not depthwise:
        return False
    wq = weight_int8(cx, node.input[1], 0)
    bias = cx.const_of(node, 2)
    out = q_output(cx, node.output[0])
    if wq is None or out is None or (len(node.input) > 2 and node.input[2] and bias is None):
        return False
    w, w_scale = wq
    bq = bias_int32(bias, m, float(x.quant[0].reshape(-1)[0]), w_scale)
    if bq is None:
        return False
    win = window(attrs, (kh, kw))
    begins, ends = resolve_pads(attrs, x.shape[2:], win)
    order, qdim = ((1, 2, 3, 0), 3) if depthwise else ((0, 2, 3, 1), 0)
    filt = cx.const("filter", np.ascontiguousarray(w.transpose(order)), quant=(w_scale, np.zeros(m, np.int64), qdim))
    _conv_op(cx, x, node.input[0], [*begins, *ends], win, filt, bq, out, m // c if depthwise else 0)
    return True


def _conv_op(cx: Converter, x: Value, x_name: str, pads: list[int], win, filt: int, bq, out: QOut,
             multiplier: int) -> None:
    """Emit CONV_2D (``multiplier`` 0) or DEPTHWISE_CONV_2D from NHWC int8 ``x`` into ``out``."""
    xt = cx.tensor(x, NHWC, x_name)
    mode = _padding_mode(pads, x.shape[2:], win)
    if mode is None:
        xt, _ = _pad(cx, x, xt, pads)
        mode = "VALID"
    b, b_scale = bq
    bias_t = cx.const("bias", b, quant=(b_scale, np.zeros(b.size, np.int64), 0))
    v = _define(cx, out, NHWC)
    common = dict(padding=getattr(cx.builder.schema.Padding, mode), strideH=win.strides[0], strideW=win.strides[1],
                  dilationHFactor=win.dilations[0], dilationWFactor=win.dilations[1],
                  fusedActivationFunction=act_enum(cx, out.act))
    if multiplier:
        opts = cx.builder.options("DepthwiseConv2DOptions", depthMultiplier=multiplier, **common)
        _op(cx, "DEPTHWISE_CONV_2D", [xt, filt, bias_t], [v.tensor], opts)
    else:
        _op(cx, "CONV_2D", [xt, filt, bias_t], [v.tensor], cx.builder.options("Conv2DOptions", **common))


@register_int8("BatchNormalization")
def batchnorm(cx: Converter, node, attrs) -> bool:
    """y = x * k + (beta - mean * k), k = gamma / sqrt(var + eps) per channel
    (ONNX BatchNormalization), as a 1x1 DEPTHWISE_CONV_2D: each channel's one
    weight is sign(k) * 127 with scale |k| / 127, which holds k exactly."""
    x = dq_source(cx, node.input[0])
    params = [cx.const_of(node, i) for i in range(1, 5)]
    if x is None or x.rank != 4 or any(p is None for p in params) or attrs.get("training_mode", 0):
        return False
    out = q_output(cx, node.output[0])
    if out is None or len([o for o in node.output if o]) != 1:
        return False
    gamma, beta, mean, var = (p.astype(np.float64) for p in params)
    k = gamma / np.sqrt(var + float(attrs.get("epsilon", 1e-5)))
    w_scale = np.where(k != 0, np.abs(k) / 127.0, 1.0).astype(np.float32)
    c = x.shape[1]
    bq = bias_int32(beta - mean * k, c, float(x.quant[0].reshape(-1)[0]), w_scale)
    if bq is None:
        return False
    w = (np.sign(k) * 127).astype(_I8).reshape(1, 1, 1, c)
    filt = cx.const("filter", w, quant=(w_scale, np.zeros(c, np.int64), 3))
    win = window({}, (1, 1))
    _conv_op(cx, x, node.input[0], [0, 0, 0, 0], win, filt, bq, out, 1)
    return True


# --- Gemm / MatMul -------------------------------------------------------------------


@register_int8("Gemm", "MatMul")
def fully_connected(cx: Converter, node, attrs) -> bool:
    """FULLY_CONNECTED int8: Gemm (alpha = beta = 1, no transA) or MatMul with a
    constant 2-D B, weights (N, K) per-channel along N, int32 bias."""
    x = dq_source(cx, node.input[0])
    b = cx.inp(node, 1)
    if x is None or b is None or b.const is None or b.rank != 2 or x.col_perm is not None:
        return False
    gemm = node.op_type == "Gemm"
    if gemm and (attrs.get("transA", 0) or float(attrs.get("alpha", 1.0)) != 1.0
                 or float(attrs.get("beta", 1.0)) != 1.0 or x.rank != 2):
        return False
    trans_b = bool(gemm and attrs.get("transB", 0))
    wq = weight_int8(cx, node.input[1], 0 if trans_b else 1)
    bias = cx.const_of(node, 2) if gemm else None
    out = q_output(cx, node.output[0])
    if wq is None or out is None or (gemm and len(node.input) > 2 and node.input[2] and bias is None):
        return False
    w, w_scale = wq
    w = w if trans_b else w.T
    n = w.shape[0]
    if bias is not None and bias.size not in (1, n):
        return False
    bq = bias_int32(bias, n, float(x.quant[0].reshape(-1)[0]), w_scale)
    if bq is None:
        return False
    xt = cx.tensor(x, None, node.input[0])
    filt = cx.const("weights", np.ascontiguousarray(w), quant=(w_scale, np.zeros(n, np.int64), 0))
    bias_t = cx.const("bias", bq[0], quant=(bq[1], np.zeros(n, np.int64), 0))
    v = _define(cx, out)
    opts = cx.builder.options("FullyConnectedOptions", fusedActivationFunction=act_enum(cx, out.act),
                              keepNumDims=not gemm)
    _op(cx, "FULLY_CONNECTED", [xt, filt, bias_t], [v.tensor], opts)
    return True


# --- elementwise ------------------------------------------------------------------------


@register_int8("Add", "Sum", "Mul")
def binary(cx: Converter, node, attrs) -> bool:
    """ADD / MUL of two int8 activations of one shape (each with its own quantization)."""
    names = [n for n in node.input if n]
    if len(names) != 2:
        return False
    a, b = dq_source(cx, names[0]), dq_source(cx, names[1])
    if a is None or b is None or a.shape != b.shape:
        return False
    out = q_output(cx, node.output[0])
    if out is None:
        return False
    lay = a.layout
    ta, tb = cx.tensor(a, lay, names[0]), cx.tensor(b, lay, names[1])
    v = _define(cx, out, lay)
    op, kind = ("MUL", "MulOptions") if node.op_type == "Mul" else ("ADD", "AddOptions")
    _op(cx, op, [ta, tb], [v.tensor], cx.builder.options(kind, fusedActivationFunction=act_enum(cx, out.act)))
    return True


# --- pooling -----------------------------------------------------------------------------


@register_int8("MaxPool", "AveragePool")
def pool(cx: Converter, node, attrs) -> bool:
    """MAX_POOL_2D / AVERAGE_POOL_2D int8. Max pool: any pads (PADV2 with -128)
    and ceil_mode. Average pool: pads TFLite's SAME or VALID can express with
    ONNX's divisor (VALID, or SAME with count_include_pad=0), no ceil_mode extension."""
    x = dq_source(cx, node.input[0])
    if x is None or x.rank != 4 or attr_ints(attrs, "dilations", [1, 1]) != [1, 1] or attrs.get("storage_order", 0):
        return False
    if len([o for o in node.output if o]) != 1:
        return False
    win = window(attrs, attr_ints(attrs, "kernel_shape", None))
    (k, s), (h, w) = (win.kernel, win.strides), x.shape[2:]
    begins, ends = resolve_pads(attrs, (h, w), win)
    pads = [*begins, *ends]
    oh, ow = cx.out_shape(node.output[0])[2:]
    extra = [_ceil_extra(h, k[0], s[0], pads[0], pads[2], oh), _ceil_extra(w, k[1], s[1], pads[1], pads[3], ow)]
    is_max = node.op_type == "MaxPool"
    mode = _padding_mode(pads, (h, w), win) if not any(extra) else None
    if not is_max and (mode is None or (mode == "SAME" and attrs.get("count_include_pad", 0))):
        return False
    out = q_output(cx, node.output[0])
    if out is None:
        return False
    xt = cx.tensor(x, NHWC, node.input[0])
    if mode is None:
        xt, _ = _pad(cx, x, xt, [pads[0], pads[1], pads[2] + extra[0], pads[3] + extra[1]], value=-128)
        mode = "VALID"
    opts = cx.builder.options("Pool2DOptions", padding=getattr(cx.builder.schema.Padding, mode), strideH=s[0],
                              strideW=s[1], filterHeight=k[0], filterWidth=k[1],
                              fusedActivationFunction=act_enum(cx, out.act))
    _write(cx, "MAX_POOL_2D" if is_max else "AVERAGE_POOL_2D", [xt], x.quant, out, NHWC, opts)
    return True


@register_int8("GlobalAveragePool")
def global_average(cx: Converter, node, attrs) -> bool:
    """MEAN over the spatial axes, int8 (the kernel rescales to the output's quantization)."""
    x = dq_source(cx, node.input[0])
    out = q_output(cx, node.output[0], allow_act=False) if x is not None else None
    if out is None:
        return False
    lay = x.layout
    axes = np.asarray(sorted(x.axis(a) for a in range(2, x.rank)), np.int32)
    xt = cx.tensor(x, lay, node.input[0])
    v = _define(cx, out, lay)
    _op(cx, "MEAN", [xt, cx.const("axes", axes)], [v.tensor], cx.builder.options("ReducerOptions", keepDims=True))
    return True


# --- data movement -----------------------------------------------------------------------


@register_int8("Concat")
def concat(cx: Converter, node, attrs) -> bool:
    """CONCATENATION int8; inputs quantized unlike the output are requantized first."""
    names = [n for n in node.input if n]
    ins = [dq_source(cx, n) for n in names]
    if not ins or any(v is None for v in ins):
        return False
    out = q_output(cx, node.output[0], allow_act=False)
    if out is None:
        return False
    lay = ins[0].layout
    tensors = []
    for v, n in zip(ins, names):
        t = cx.tensor(v, lay, n)
        tensors.append(t if same_quant(v.quant, out.quant) else _requantize(cx, t, v.tshape(lay), out.quant))
    y = _define(cx, out, lay)
    axis = y.axis(int(attrs["axis"]))
    _op(cx, "CONCATENATION", tensors, [y.tensor], cx.builder.options("ConcatenationOptions", axis=axis))
    return True


@register_int8("Reshape", "Flatten")
def reshape(cx: Converter, node, attrs) -> bool:
    """An int8 reshape, keeping the input's layout where it can (``ops_shape.reshape_value``)."""
    x = dq_source(cx, node.input[0])
    out = q_output(cx, node.output[0], allow_act=False) if x is not None else None
    if out is None or not same_quant(x.quant, out.quant):
        return False
    out.commit(cx)
    reshape_value(cx, x, node.input[0], out.name, cx.out_shape(out.name), quant=x.quant)
    return True
