"""Converters for the image ops: Conv, ConvTranspose, BatchNormalization,
pooling, LRN, Resize. Inputs are read NHWC; outputs are NHWC.

ONNX conventions: ONNX operator spec (onnx/docs/Operators.md). TFLite
conventions: ``tensorflow/lite/kernels`` and ``schema.fbs``; the padding rule
for ``SAME`` is TensorFlow's (``tensorflow/core/framework/kernel_shape_util``):
``total = max((ceil(in / s) - 1) * s + (k - 1) * d + 1 - in, 0)``, with the
smaller half before. ONNX pads TFLite cannot express become an explicit PAD.
"""

from __future__ import annotations

import numpy as np
import onnx

from unified.errors import DelegateError
from unified.onnx import Window, attr_ints, conv_transpose_pads, decode_attributes, resolve_pads, same_pads, window

from .convert import NHWC, Converter, Value, register
from .fuse import act_enum, fused_activation


def _padding_mode(pads: list[int], hw: tuple[int, int], win: Window) -> str | None:
    """``SAME`` / ``VALID`` when TFLite's rule gives exactly ``pads`` ([top, left, bottom, right]), else None.

    TFLite's SAME is ONNX's SAME_UPPER (``unified.onnx.same_pads``).
    """
    if not any(pads):
        return "VALID"
    same = [same_pads(hw[i], win.kernel[i], win.strides[i], win.dilations[i]) for i in range(2)]
    if [same[0][0], same[1][0], same[0][1], same[1][1]] == list(pads):
        return "SAME"
    return None


def _pad_nhwc(cx: Converter, x: int, tshape, pads: list[int], value: float | None = None) -> tuple[int, tuple]:
    """Explicit PAD (or PADV2 with ``value``) of an NHWC tensor; returns (tensor, new shape)."""
    t, l, b, r = pads
    paddings = np.array([[0, 0], [t, b], [l, r], [0, 0]], np.int32)
    shape = (tshape[0], tshape[1] + t + b, tshape[2] + l + r, tshape[3])
    out = cx.new(cx.uid("pad"), shape, np.float32)
    ins = [x, cx.const("paddings", paddings)]
    if value is None:
        cx.builder.op("PAD", ins, [out])
    else:
        ins.append(cx.const("padval", np.array(value, np.float32)))
        cx.builder.op("PADV2", ins, [out])
    return out, shape


# --- Conv ---------------------------------------------------------------------


def _fold_batchnorm(cx: Converter, out_name: str, w: np.ndarray, bias: np.ndarray):
    """Fold a following inference BatchNormalization into (w, bias).

    y = gamma * (conv - mean) / sqrt(var + eps) + beta   (ONNX BatchNormalization)
    """
    bn = cx.sole_consumer(out_name)
    if bn is None or bn.op_type != "BatchNormalization" or len([o for o in bn.output if o]) != 1:
        return out_name, w, bias
    params = [cx.const_of(bn, i) for i in range(1, 5)]
    if any(p is None for p in params):
        return out_name, w, bias
    attrs = decode_attributes(bn)
    if attrs.get("training_mode", 0):
        return out_name, w, bias
    gamma, beta, mean, var = (p.astype(np.float64) for p in params)
    scale = gamma / np.sqrt(var + float(attrs.get("epsilon", 1e-5)))
    w = w * scale.reshape((-1,) + (1,) * (w.ndim - 1))
    bias = (bias - mean) * scale + beta
    cx.mark_fused(bn)
    return bn.output[0], w, bias


@register("Conv")
def conv(cx: Converter, node, attrs) -> None:
    """CONV_2D (group 1), DEPTHWISE_CONV_2D (group == C_in, one input channel
    per group) or SPLIT + CONV_2D per group + CONCATENATION. Weights OIHW are
    written OHWI (depthwise: 1HWO). A weight computed at run time (e.g. a
    DequantizeLinear that did not fold) is re-laid out with a TRANSPOSE."""
    x, wv = cx.inp(node, 0), cx.inp(node, 1)
    if x.rank == 3:
        _conv1d(cx, node, attrs)
        return
    m, cg, kh, kw = wv.shape
    group = int(attrs.get("group", 1))
    c, h, wd = x.shape[1:]
    depthwise = group == c and cg == 1 and group > 1
    out_name, w, bias, filt = _conv_weights(cx, node, group == 1 or depthwise, depthwise)
    out_name, act = fused_activation(cx, out_name)
    win = window(attrs, (kh, kw))
    begins, ends = resolve_pads(attrs, (h, wd), win)
    xt, tshape, padding = _conv_input(cx, x, node.input[0], [*begins, *ends], win)
    out = cx.define(out_name, NHWC)
    if filt is not None:
        bias_v = cx.inp(node, 2)
        bias_t = cx.const("bias", np.zeros(m, np.float32)) if bias_v is None else cx.tensor(bias_v)
    else:
        bias_t = cx.const("bias", bias.astype(np.float32))
    common = dict(padding=padding, strideH=win.strides[0], strideW=win.strides[1], dilationHFactor=win.dilations[0],
                  dilationWFactor=win.dilations[1], fusedActivationFunction=act_enum(cx, act))
    if group != 1 and not depthwise:
        _grouped_conv(cx, xt, tshape, w, bias, group, out.tensor, common)
        return
    if filt is None:
        order = (1, 2, 3, 0) if depthwise else (0, 2, 3, 1)
        filt = cx.const("filter", np.ascontiguousarray(w.transpose(order)).astype(np.float32))
    if depthwise:
        opts = cx.builder.options("DepthwiseConv2DOptions", depthMultiplier=m // c, **common)
        cx.builder.op("DEPTHWISE_CONV_2D", [xt, filt, bias_t], [out.tensor], opts)
    else:
        cx.builder.op("CONV_2D", [xt, filt, bias_t], [out.tensor], cx.builder.options("Conv2DOptions", **common))


def _conv_weights(cx: Converter, node, single_filter: bool, depthwise: bool):
    """A Conv's weight and bias.

    Returns:
        ``(out_name, w, bias, filt)``. With a constant weight and bias: ``w``
        (OIHW) and ``bias`` as float64 arrays, a following inference
        BatchNormalization folded in (``out_name`` is then its output), and
        ``filt`` None. Otherwise ``w`` and ``bias`` are None and ``filt`` is
        the weight's tensor laid out OHWI (depthwise: 1HWO).

    Raises:
        DelegateError: a grouped, not depthwise (``single_filter`` False) Conv
            whose weight or bias is computed at run time.
    """
    wv, b = cx.inp(node, 1), cx.const_of(node, 2)
    if wv.const is not None and (cx.inp(node, 2) is None or b is not None):
        w = wv.const.astype(np.float64)
        bias = np.zeros(wv.shape[0]) if b is None else b.astype(np.float64)
        return (*_fold_batchnorm(cx, node.output[0], w, bias), None)
    if single_filter:
        return node.output[0], None, None, cx.tensor(wv, (1, 2, 3, 0) if depthwise else (0, 2, 3, 1), node.input[1])
    raise DelegateError("grouped Conv with a weight or bias computed at run time is not converted")


def _conv_input(cx: Converter, x: Value, name: str, pads: list[int], win: Window) -> tuple[int, tuple, int]:
    """A Conv's input as an NHWC tensor, with an explicit PAD where TFLite's
    SAME / VALID cannot express ``pads`` ([top, left, bottom, right]).

    Returns:
        ``(tensor, its TFLite shape, schema.Padding value)``.
    """
    n, c, h, wd = x.shape
    xt = cx.tensor(x, NHWC, name)
    tshape = (n, h, wd, c)
    mode = _padding_mode(pads, (h, wd), win)
    if mode is None:
        xt, tshape = _pad_nhwc(cx, xt, tshape, pads)
        mode = "VALID"
    return xt, tshape, getattr(cx.builder.schema.Padding, mode)


def _grouped_conv(cx: Converter, xt: int, tshape, w: np.ndarray, bias: np.ndarray, group: int, out: int,
                  common: dict) -> None:
    """Grouped Conv with constant OIHW ``w``: SPLIT the NHWC channels, one
    CONV_2D per group (Conv2DOptions ``common``), CONCATENATION into ``out``."""
    m, cg = w.shape[:2]
    oshape = cx.builder.shape_of(out)
    pieces_in = [cx.new(cx.uid("group_in"), (tshape[0], tshape[1], tshape[2], cg), np.float32)
                 for _ in range(group)]
    cx.builder.op("SPLIT", [cx.const("axis", np.array(3, np.int32)), xt], pieces_in,
                  cx.builder.options("SplitOptions", numSplits=group))
    mg = m // group
    pieces_out = []
    for gi in range(group):
        wg = w[gi * mg:(gi + 1) * mg]
        filt = cx.const("filter", np.ascontiguousarray(wg.transpose(0, 2, 3, 1)).astype(np.float32))
        bt = cx.const("bias", bias[gi * mg:(gi + 1) * mg].astype(np.float32))
        o = cx.new(cx.uid("group_out"), oshape[:3] + (mg,), np.float32)
        cx.builder.op("CONV_2D", [pieces_in[gi], filt, bt], [o], cx.builder.options("Conv2DOptions", **common))
        pieces_out.append(o)
    cx.builder.op("CONCATENATION", pieces_out, [out], cx.builder.options("ConcatenationOptions", axis=3))


def _conv1d(cx: Converter, node, attrs) -> None:
    """A 1-D Conv ``(N, C, L)`` as the 2-D one on ``(N, C, 1, L)``: RESHAPE in, CONV_2D, RESHAPE out."""
    from .ops_shape import reshape_value

    x, wv = cx.inp(node, 0), cx.inp(node, 1)
    (n, c, length), (m, cg, k) = x.shape, wv.shape
    y = node.output[0]
    n_out, m_out, l_out = cx.out_shape(y)
    x4, w4, y4 = cx.uid(node.input[0] + "/2d"), cx.uid(node.input[1] + "/2d"), cx.uid(y + "/2d")
    elem = cx.types[y].tensor_type.elem_type
    cx.types[x4] = onnx.helper.make_tensor_type_proto(elem, [n, c, 1, length])
    cx.types[y4] = onnx.helper.make_tensor_type_proto(elem, [n_out, m_out, 1, l_out])
    reshape_value(cx, x, node.input[0], x4, (n, c, 1, length))
    if wv.const is not None:
        cx.set_const(w4, wv.const.reshape(m, cg, 1, k))
    else:
        cx.types[w4] = onnx.helper.make_tensor_type_proto(elem, [m, cg, 1, k])
        reshape_value(cx, wv, node.input[1], w4, (m, cg, 1, k))
    two = dict(attrs)
    for name, one in (("kernel_shape", None), ("strides", 1), ("dilations", 1)):
        v = attr_ints(attrs, name, None)
        if v is not None:
            two[name] = [1 if one is None else one] + v
    pads = attr_ints(attrs, "pads", None)
    if pads is not None:
        two["pads"] = [0, pads[0], 0, pads[1]]
    inputs = [x4, w4] + list(node.input[2:3])
    conv(cx, onnx.helper.make_node("Conv", inputs, [y4], name=node.name + "/2d", **two), two)
    reshape_value(cx, cx.get(y4), y4, y, (n_out, m_out, l_out))


@register("ConvTranspose")
def conv_transpose(cx: Converter, node, attrs) -> None:
    x = cx.inp(node, 0)
    w = cx.const_of(node, 1).astype(np.float32)  # (C_in, C_out, kH, kW)
    cin, cout, kh, kw = w.shape
    n, _, h, wd = x.shape
    win = window(attrs, (kh, kw))
    s = win.strides
    full = (n, (h - 1) * s[0] + kh, (wd - 1) * s[1] + kw, cout)  # VALID transpose-conv output
    out_name = node.output[0]
    final = cx.out_shape(out_name)
    (t, l), _, _ = conv_transpose_pads(attrs, (h, wd), win)
    xt = cx.tensor(x, NHWC, node.input[0])
    filt = cx.const("filter", np.ascontiguousarray(w.transpose(1, 2, 3, 0)))
    y = cx.new(cx.uid("tconv"), full, np.float32)
    opts = cx.builder.options("TransposeConvOptions", padding=cx.builder.schema.Padding.VALID, strideH=s[0],
                              strideW=s[1])
    oshape = cx.const("oshape", np.asarray(full, np.int32))
    cx.builder.op("TRANSPOSE_CONV", [oshape, filt, xt], [y], opts)
    # crop the pads (and extend by output_padding), then add the bias
    oh, ow = final[2], final[3]
    need_h, need_w = t + oh, l + ow
    if need_h > full[1] or need_w > full[2]:
        y, _ = _pad_nhwc(cx, y, full, [0, 0, max(need_h - full[1], 0), max(need_w - full[2], 0)])
    if (t, l, oh, ow) != (0, 0, full[1], full[2]):
        cropped = cx.new(cx.uid("crop"), (n, oh, ow, cout), np.float32)
        cx.builder.op("SLICE", [y, cx.const("begin", np.array([0, t, l, 0], np.int32)),
                                cx.const("size", np.array([n, oh, ow, cout], np.int32))], [cropped])
        y = cropped
    out = cx.define(out_name, NHWC)
    b = cx.const_of(node, 2)
    if b is None:
        cx.reshape_op(y, out.tensor, out.tshape())
    else:
        cx.builder.op("ADD", [y, cx.const("bias", b.astype(np.float32).reshape(1, 1, 1, -1))], [out.tensor],
                      cx.builder.options("AddOptions"))


@register("BatchNormalization")
def batchnorm(cx: Converter, node, attrs) -> None:
    """Inference BatchNormalization as MUL + ADD with per-channel constants."""
    x = cx.inp(node, 0)
    gamma, beta, mean, var = (cx.const_of(node, i).astype(np.float64) for i in range(1, 5))
    scale = gamma / np.sqrt(var + float(attrs.get("epsilon", 1e-5)))
    shift = beta - mean * scale
    cshape = (-1,) + (1,) * (x.rank - 2)
    perm = x.perm
    xt = cx.tensor(x, perm, node.input[0])
    mid = cx.new(cx.uid("bn_mul"), x.tshape(), np.float32)
    cx.builder.op("MUL", [xt, cx.const_in(scale.astype(np.float32).reshape(cshape), perm, x.rank)], [mid],
                  cx.builder.options("MulOptions"))
    out = cx.define(node.output[0], perm)
    cx.builder.op("ADD", [mid, cx.const_in(shift.astype(np.float32).reshape(cshape), perm, x.rank)], [out.tensor],
                  cx.builder.options("AddOptions"))


# --- pooling --------------------------------------------------------------------


def _ceil_extra(size: int, k: int, s: int, pb: int, pe: int, out: int) -> int:
    """Extra end padding making floor-mode pooling produce ``out`` (ceil_mode)."""
    return max((out - 1) * s + k - (size + pb + pe), 0)


@register("MaxPool", "AveragePool")
def pool(cx: Converter, node, attrs) -> None:
    x = cx.inp(node, 0)
    win = window(attrs, attr_ints(attrs, "kernel_shape", None))
    k, s = win.kernel, win.strides
    n, c, h, w = x.shape
    begins, ends = resolve_pads(attrs, (h, w), win)
    pads = [*begins, *ends]
    final = cx.out_shape(node.output[0])
    oh, ow = final[2], final[3]
    extra = [_ceil_extra(h, k[0], s[0], pads[0], pads[2], oh), _ceil_extra(w, k[1], s[1], pads[1], pads[3], ow)]
    xt = cx.tensor(x, NHWC, node.input[0])
    tshape = (n, h, w, c)
    is_max = node.op_type == "MaxPool"
    include = bool(attrs.get("count_include_pad", 0))
    mode = _padding_mode(pads, (h, w), win) if not any(extra) else None
    correction = None
    if mode is None or (mode == "SAME" and not is_max and include):
        full = [pads[0], pads[1], pads[2] + extra[0], pads[3] + extra[1]]
        xt, tshape = _pad_nhwc(cx, xt, tshape, full, value=float(np.finfo(np.float32).min) if is_max else None)
        mode = "VALID"
        if not is_max:
            correction = _avg_correction(h, w, k, s, pads, (oh, ow), include)
    out_name, act = fused_activation(cx, node.output[0]) if correction is None else (node.output[0], "NONE")
    out = cx.define(out_name, NHWC)
    padding = getattr(cx.builder.schema.Padding, mode)
    opts = cx.builder.options("Pool2DOptions", padding=padding, strideH=s[0], strideW=s[1],
                              filterHeight=k[0], filterWidth=k[1], fusedActivationFunction=act_enum(cx, act))
    if correction is None:
        cx.builder.op("MAX_POOL_2D" if is_max else "AVERAGE_POOL_2D", [xt], [out.tensor], opts)
    else:
        mid = cx.new(cx.uid("avg"), out.tshape(), np.float32)
        cx.builder.op("AVERAGE_POOL_2D", [xt], [mid], opts)
        cx.builder.op("MUL", [mid, cx.const("count_fix", correction.reshape(1, oh, ow, 1))], [out.tensor],
                      cx.builder.options("MulOptions"))


def _avg_correction(h, w, k, s, pads, out_hw, include) -> np.ndarray:
    """Per-output factor turning an average over a zero-padded window of k*k
    elements into ONNX's average.

    ONNX AveragePool divides by the number of window elements inside the input
    (count_include_pad=0) or inside the explicitly padded input
    (count_include_pad=1); windows reaching into the ceil_mode extension never
    count those elements (ONNX reference ``op_pool_common.py``).
    """
    def counts(size, kk, ss, pb, pe, o):
        start = np.arange(o) * ss - pb
        lo_in, hi_in = np.maximum(start, 0), np.minimum(start + kk, size)
        lo_pad, hi_pad = np.maximum(start, -pb), np.minimum(start + kk, size + pe)
        return (hi_pad - lo_pad) if include else (hi_in - lo_in)

    ch = counts(h, k[0], s[0], pads[0], pads[2], out_hw[0])
    cw = counts(w, k[1], s[1], pads[1], pads[3], out_hw[1])
    return (k[0] * k[1] / np.outer(ch, cw)).astype(np.float32)


@register("GlobalAveragePool", "GlobalMaxPool")
def global_pool(cx: Converter, node, attrs) -> None:
    x = cx.inp(node, 0)
    perm = x.perm if x.perm is not None else tuple(range(x.rank))
    axes = np.asarray([x.axis(a) for a in range(2, x.rank)], np.int32)
    xt = cx.tensor(x, perm, node.input[0])
    out = cx.define(node.output[0], perm)
    op = "MEAN" if node.op_type == "GlobalAveragePool" else "REDUCE_MAX"
    cx.builder.op(op, [xt, cx.const("axes", axes)], [out.tensor], cx.builder.options("ReducerOptions", keepDims=True))


@register("LRN")
def lrn(cx: Converter, node, attrs) -> None:
    """ONNX: y = x / (bias + alpha / size * sum_sq)^beta over channels
    [c - floor((size-1)/2), c + ceil((size-1)/2)]; TFLite sums over
    [c - radius, c + radius] and multiplies by alpha directly, so
    alpha_tfl = alpha / size and radius = (size - 1) / 2 (odd size)."""
    x = cx.inp(node, 0)
    size = int(attrs["size"])
    xt = cx.tensor(x, NHWC, node.input[0])
    out = cx.define(node.output[0], NHWC)
    opts = cx.builder.options("LocalResponseNormalizationOptions", radius=(size - 1) // 2,
                              bias=float(attrs.get("bias", 1.0)), alpha=float(attrs.get("alpha", 1e-4)) / size,
                              beta=float(attrs.get("beta", 0.75)))
    cx.builder.op("LOCAL_RESPONSE_NORMALIZATION", [xt], [out.tensor], opts)


@register("Resize", "Upsample")
def resize(cx: Converter, node, attrs) -> None:
    x = cx.inp(node, 0)
    final = cx.out_shape(node.output[0])
    mode = attrs.get("mode", "nearest")
    ctm = attrs.get("coordinate_transformation_mode", "half_pixel" if node.op_type == "Resize" and cx.opset >= 11
                    else "asymmetric")
    xt = cx.tensor(x, NHWC, node.input[0])
    out = cx.define(node.output[0], NHWC)
    size = cx.const("size", np.asarray(final[2:], np.int32))
    align = ctm == "align_corners"
    half = ctm in ("half_pixel", "pytorch_half_pixel")
    if mode == "nearest":
        opts = cx.builder.options("ResizeNearestNeighborOptions", alignCorners=align, halfPixelCenters=half)
        cx.builder.op("RESIZE_NEAREST_NEIGHBOR", [xt, size], [out.tensor], opts, version=3 if half else 1)
    else:
        opts = cx.builder.options("ResizeBilinearOptions", alignCorners=align, halfPixelCenters=half)
        cx.builder.op("RESIZE_BILINEAR", [xt, size], [out.tensor], opts, version=3 if half else 1)
