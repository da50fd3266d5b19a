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

from .convert import NHWC, Converter, attr_ints, register
from .fuse import act_enum, fused_activation


def same_pads(size: int, k: int, s: int, d: int = 1) -> tuple[int, int]:
    """TensorFlow ``SAME`` padding (begin, end) of one spatial dim."""
    out = -(-size // s)
    total = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
    return total // 2, total - total // 2


def _spatial_pads(attrs: dict, hw: tuple[int, int], k: list[int], s: list[int], d: list[int]) -> list[int]:
    """ONNX pads as [top, left, bottom, right], resolving auto_pad."""
    auto = attrs.get("auto_pad", "NOTSET")
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        p = [same_pads(hw[i], k[i], s[i], d[i]) for i in range(2)]
        if auto == "SAME_LOWER":
            p = [(e, b) for b, e in p]
        return [p[0][0], p[1][0], p[0][1], p[1][1]]
    if auto == "VALID":
        return [0, 0, 0, 0]
    return attr_ints(attrs, "pads", [0, 0, 0, 0])


def _padding_mode(cx: Converter, pads: list[int], hw, k, s, d) -> str | None:
    """``SAME`` / ``VALID`` when TFLite's rule gives exactly ``pads``, else None."""
    if not any(pads):
        return "VALID"
    same = [same_pads(hw[i], k[i], s[i], d[i]) for i in range(2)]
    if [same[0][0], same[1][0], same[0][1], same[1][1]] == list(pads):
        return "SAME"
    return None


def _pad_nhwc(cx: Converter, x: int, tshape, pads: list[int], value: float | None = None) -> tuple[int, tuple]:
    """Explicit PAD (or PADV2 with ``value``) of an NHWC tensor; returns (tensor, new shape)."""
    t, l, b, r = pads
    paddings = np.array([[0, 0], [t, b], [l, r], [0, 0]], np.int32)
    shape = (tshape[0], tshape[1] + t + b, tshape[2] + l + r, tshape[3])
    out = cx.new(cx.uid("pad"), shape, np.float32)
    ins = [x, cx.b.const(cx.uid("paddings"), paddings)]
    if value is None:
        cx.b.op("PAD", ins, [out])
    else:
        ins.append(cx.b.const(cx.uid("padval"), np.array(value, np.float32)))
        cx.b.op("PADV2", ins, [out])
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
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in bn.attribute}
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
    n, c, h, wd = x.shape
    depthwise = group == c and cg == 1 and group > 1
    b = cx.const_of(node, 2)
    out_name = node.output[0]
    if wv.const is not None and (cx.inp(node, 2) is None or b is not None):
        w = wv.const.astype(np.float64)
        bias = np.zeros(m) if b is None else b.astype(np.float64)
        out_name, w, bias = _fold_batchnorm(cx, out_name, w, bias)
        filt = None
    elif group == 1 or depthwise:
        w = bias = None
        filt = cx.tensor(wv, (1, 2, 3, 0) if depthwise else (0, 2, 3, 1), node.input[1])
    else:
        raise DelegateError("grouped Conv with a weight or bias computed at run time is not converted")
    out_name, act = fused_activation(cx, out_name)
    k, s = [kh, kw], attr_ints(attrs, "strides", [1, 1])
    d = attr_ints(attrs, "dilations", [1, 1])
    pads = _spatial_pads(attrs, (h, wd), k, s, d)
    xt = cx.tensor(x, NHWC, node.input[0])
    tshape = (n, h, wd, c)
    mode = _padding_mode(cx, pads, (h, wd), k, s, d)
    if mode is None:
        xt, tshape = _pad_nhwc(cx, xt, tshape, pads)
        mode = "VALID"
    padding = getattr(cx.b.s.Padding, mode)
    out = cx.define(out_name, NHWC)
    act_e = act_enum(cx, act)
    if filt is not None:
        bias_v = cx.inp(node, 2)
        bias_t = cx.b.const(cx.uid("bias"), np.zeros(m, np.float32)) if bias_v is None else cx.tensor(bias_v)
    else:
        bias_t = cx.b.const(cx.uid("bias"), bias.astype(np.float32))
    if filt is not None and group == 1:
        opts = cx.b.options("Conv2DOptions", padding=padding, strideH=s[0], strideW=s[1], dilationHFactor=d[0],
                            dilationWFactor=d[1], fusedActivationFunction=act_e)
        cx.b.op("CONV_2D", [xt, filt, bias_t], [out.tensor], opts)
        return
    if filt is not None:
        opts = cx.b.options("DepthwiseConv2DOptions", padding=padding, strideH=s[0], strideW=s[1],
                            depthMultiplier=m // c, dilationHFactor=d[0], dilationWFactor=d[1],
                            fusedActivationFunction=act_e)
        cx.b.op("DEPTHWISE_CONV_2D", [xt, filt, bias_t], [out.tensor], opts)
        return
    if group == 1:
        filt = cx.b.const(cx.uid("filter"), np.ascontiguousarray(w.transpose(0, 2, 3, 1)).astype(np.float32))
        opts = cx.b.options("Conv2DOptions", padding=padding, strideH=s[0], strideW=s[1], dilationHFactor=d[0],
                            dilationWFactor=d[1], fusedActivationFunction=act_e)
        cx.b.op("CONV_2D", [xt, filt, bias_t], [out.tensor], opts)
    elif depthwise:
        filt = cx.b.const(cx.uid("filter"), np.ascontiguousarray(w.transpose(1, 2, 3, 0)).astype(np.float32))
        opts = cx.b.options("DepthwiseConv2DOptions", padding=padding, strideH=s[0], strideW=s[1],
                            depthMultiplier=m // c, dilationHFactor=d[0], dilationWFactor=d[1],
                            fusedActivationFunction=act_e)
        cx.b.op("DEPTHWISE_CONV_2D", [xt, filt, bias_t], [out.tensor], opts)
    else:
        # grouped: SPLIT the channels, one CONV_2D per group, CONCATENATION
        oshape = cx.b.shape_of(out.tensor)
        pieces_in = [cx.new(cx.uid("group_in"), (tshape[0], tshape[1], tshape[2], cg), np.float32)
                     for _ in range(group)]
        cx.b.op("SPLIT", [cx.b.const(cx.uid("axis"), np.array(3, np.int32)), xt], pieces_in,
                cx.b.options("SplitOptions", numSplits=group))
        mg = m // group
        pieces_out = []
        for gi in range(group):
            wg = w[gi * mg:(gi + 1) * mg]
            filt = cx.b.const(cx.uid("filter"), np.ascontiguousarray(wg.transpose(0, 2, 3, 1)).astype(np.float32))
            bt = cx.b.const(cx.uid("bias"), bias[gi * mg:(gi + 1) * mg].astype(np.float32))
            o = cx.new(cx.uid("group_out"), oshape[:3] + (mg,), np.float32)
            opts = cx.b.options("Conv2DOptions", padding=padding, strideH=s[0], strideW=s[1],
                                dilationHFactor=d[0], dilationWFactor=d[1], fusedActivationFunction=act_e)
            cx.b.op("CONV_2D", [pieces_in[gi], filt, bt], [o], opts)
            pieces_out.append(o)
        cx.b.op("CONCATENATION", pieces_out, [out.tensor], cx.b.options("ConcatenationOptions", axis=3))


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
    s = attr_ints(attrs, "strides", [1, 1])
    n, _, h, wd = x.shape
    full = (n, (h - 1) * s[0] + kh, (wd - 1) * s[1] + kw, cout)  # VALID transpose-conv output
    out_name = node.output[0]
    final = cx.out_shape(out_name)
    pads = attr_ints(attrs, "pads", [0, 0, 0, 0])
    auto = attrs.get("auto_pad", "NOTSET")
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        tot = [full[1] - final[2], full[2] - final[3]]
        lo = [t // 2 if auto == "SAME_UPPER" else t - t // 2 for t in tot]
        pads = [lo[0], lo[1], tot[0] - lo[0], tot[1] - lo[1]]
    xt = cx.tensor(x, NHWC, node.input[0])
    filt = cx.b.const(cx.uid("filter"), np.ascontiguousarray(w.transpose(1, 2, 3, 0)))
    y = cx.new(cx.uid("tconv"), full, np.float32)
    opts = cx.b.options("TransposeConvOptions", padding=cx.b.s.Padding.VALID, strideH=s[0], strideW=s[1])
    cx.b.op("TRANSPOSE_CONV", [cx.b.const(cx.uid("oshape"), np.asarray(full, np.int32)), filt, xt], [y], opts)
    # crop the pads (and extend by output_padding), then add the bias
    oh, ow = final[2], final[3]
    t, l = pads[0], pads[1]
    need_h, need_w = t + oh, l + ow
    if need_h > full[1] or need_w > full[2]:
        y, _ = _pad_nhwc(cx, y, full, [0, 0, max(need_h - full[1], 0), max(need_w - full[2], 0)])
    if (t, l, oh, ow) != (0, 0, full[1], full[2]):
        cropped = cx.new(cx.uid("crop"), (n, oh, ow, cout), np.float32)
        cx.b.op("SLICE", [y, cx.b.const(cx.uid("begin"), np.array([0, t, l, 0], np.int32)),
                          cx.b.const(cx.uid("size"), np.array([n, oh, ow, cout], np.int32))], [cropped])
        y = cropped
    out = cx.define(out_name, NHWC)
    b = cx.const_of(node, 2)
    if b is None:
        cx.reshape_op(y, out.tensor, out.tshape())
    else:
        cx.b.op("ADD", [y, cx.b.const(cx.uid("bias"), b.astype(np.float32).reshape(1, 1, 1, -1))], [out.tensor],
                cx.b.options("AddOptions"))


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
    cx.b.op("MUL", [xt, cx.const_in(scale.astype(np.float32).reshape(cshape), perm, x.rank)], [mid],
            cx.b.options("MulOptions"))
    out = cx.define(node.output[0], perm)
    cx.b.op("ADD", [mid, cx.const_in(shift.astype(np.float32).reshape(cshape), perm, x.rank)], [out.tensor],
            cx.b.options("AddOptions"))


# --- pooling --------------------------------------------------------------------


def _ceil_extra(size: int, k: int, s: int, pb: int, pe: int, out: int) -> int:
    """Extra end padding making floor-mode pooling produce ``out`` (ceil_mode)."""
    return max((out - 1) * s + k - (size + pb + pe), 0)


@register("MaxPool", "AveragePool")
def pool(cx: Converter, node, attrs) -> None:
    x = cx.inp(node, 0)
    k = attr_ints(attrs, "kernel_shape", None)
    s = attr_ints(attrs, "strides", [1, 1])
    n, c, h, w = x.shape
    pads = _spatial_pads(attrs, (h, w), k, s, [1, 1])
    final = cx.out_shape(node.output[0])
    oh, ow = final[2], final[3]
    extra = [_ceil_extra(h, k[0], s[0], pads[0], pads[2], oh), _ceil_extra(w, k[1], s[1], pads[1], pads[3], ow)]
    xt = cx.tensor(x, NHWC, node.input[0])
    tshape = (n, h, w, c)
    is_max = node.op_type == "MaxPool"
    include = bool(attrs.get("count_include_pad", 0))
    mode = _padding_mode(cx, pads, (h, w), k, s, [1, 1]) if not any(extra) else None
    correction = None
    if mode is None or (mode == "SAME" and not is_max and include):
        full = [pads[0], pads[1], pads[2] + extra[0], pads[3] + extra[1]]
        xt, tshape = _pad_nhwc(cx, xt, tshape, full, value=float(np.finfo(np.float32).min) if is_max else None)
        mode = "VALID"
        if not is_max:
            correction = _avg_correction(h, w, k, s, pads, (oh, ow), include)
    out_name, act = fused_activation(cx, node.output[0]) if correction is None else (node.output[0], "NONE")
    out = cx.define(out_name, NHWC)
    opts = cx.b.options("Pool2DOptions", padding=getattr(cx.b.s.Padding, mode), strideH=s[0], strideW=s[1],
                        filterHeight=k[0], filterWidth=k[1], fusedActivationFunction=act_enum(cx, act))
    if correction is None:
        cx.b.op("MAX_POOL_2D" if is_max else "AVERAGE_POOL_2D", [xt], [out.tensor], opts)
    else:
        mid = cx.new(cx.uid("avg"), out.tshape(), np.float32)
        cx.b.op("AVERAGE_POOL_2D", [xt], [mid], opts)
        cx.b.op("MUL", [mid, cx.b.const(cx.uid("count_fix"), correction.reshape(1, oh, ow, 1))], [out.tensor],
                cx.b.options("MulOptions"))


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
    cx.b.op(op, [xt, cx.b.const(cx.uid("axes"), axes)], [out.tensor], cx.b.options("ReducerOptions", keepDims=True))


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
    opts = cx.b.options("LocalResponseNormalizationOptions", radius=(size - 1) // 2,
                        bias=float(attrs.get("bias", 1.0)), alpha=float(attrs.get("alpha", 1e-4)) / size,
                        beta=float(attrs.get("beta", 0.75)))
    cx.b.op("LOCAL_RESPONSE_NORMALIZATION", [xt], [out.tensor], opts)


@register("Resize", "Upsample")
def resize(cx: Converter, node, attrs) -> None:
    x = cx.inp(node, 0)
    final = cx.out_shape(node.output[0])
    mode = attrs.get("mode", "nearest")
    ctm = attrs.get("coordinate_transformation_mode", "half_pixel" if node.op_type == "Resize" and cx.opset >= 11
                    else "asymmetric")
    xt = cx.tensor(x, NHWC, node.input[0])
    out = cx.define(node.output[0], NHWC)
    size = cx.b.const(cx.uid("size"), np.asarray(final[2:], np.int32))
    align = ctm == "align_corners"
    half = ctm in ("half_pixel", "pytorch_half_pixel")
    if mode == "nearest":
        opts = cx.b.options("ResizeNearestNeighborOptions", alignCorners=align, halfPixelCenters=half)
        cx.b.op("RESIZE_NEAREST_NEIGHBOR", [xt, size], [out.tensor], opts, version=3 if half else 1)
    else:
        opts = cx.b.options("ResizeBilinearOptions", alignCorners=align, halfPixelCenters=half)
        cx.b.op("RESIZE_BILINEAR", [xt, size], [out.tensor], opts, version=3 if half else 1)
