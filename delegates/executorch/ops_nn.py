"""Lowerings of the neural-network ops: convolution, linear algebra, pooling,
normalization, softmax and resize.

Each function takes the node (attributes, inferred shapes) and its inputs
(torch tensors; NumPy arrays for host slots) and returns torch tensors. The
ONNX semantics followed are those of the ONNX operator spec
(https://onnx.ai/onnx/operators/), section per op.
"""

from __future__ import annotations

import math

from unified.delegate import attr_in
from unified.graph import NodeView
from unified.onnx import conv_transpose_pads, resolve_pads, window

from .ops_common import F, is_host, torch, torch_pad_list
from .support import Lowering, spatial_rank

__all__ = ["LOWERINGS"]

_CONV = {1: "conv1d", 2: "conv2d", 3: "conv3d"}
_CONV_T = {1: "conv_transpose1d", 2: "conv_transpose2d", 3: "conv_transpose3d"}


def _no_3d(node: NodeView) -> str | None:
    """ExecuTorch 1.5's runtime has no 3-D pooling kernel (the program fails to
    load: error 0x14) and its 3-D convolutions fail at execute (0x12)."""
    if node.inputs[0].rank == 5:
        return f"3-D {node.op_type} (rank-5 input) not handled: the ExecuTorch runtime has no kernel for it"
    return None


def conv(node: NodeView, x, w, b=None):
    nd = w.dim() - 2
    win = window(node.attributes, w.shape[2:])
    begins, ends = resolve_pads(node.attributes, x.shape[2:], win)
    if begins != ends:
        x = F.pad(x, torch_pad_list(begins, ends))
        begins = [0] * nd
    return getattr(F, _CONV[nd])(x, w, b, list(win.strides), begins, list(win.dilations), win.group)


def conv_transpose(node: NodeView, x, w, b=None):
    nd = w.dim() - 2
    win = window(node.attributes, w.shape[2:])
    out_pad = list(node.attr("output_padding", [0] * nd))
    begins, ends, _ = conv_transpose_pads(node.attributes, x.shape[2:], win)  # auto_pad NOTSET or VALID only
    y = getattr(F, _CONV_T[nd])(x, w, b, list(win.strides), 0, out_pad, win.group, list(win.dilations))
    if any(begins) or any(ends):  # ONNX pads crop the full transposed output (spec: ConvTranspose)
        index = [slice(None), slice(None)] + [slice(bg, y.shape[2 + i] - e) for i, (bg, e) in enumerate(zip(begins, ends))]
        y = y[tuple(index)]
    return y


def gemm(node: NodeView, a, b, c=None):
    alpha, beta = node.attr("alpha", 1.0), node.attr("beta", 1.0)
    if node.attr("transA", 0):
        a = a.t()
    if node.attr("transB", 0) and alpha == 1.0 and (c is None or (beta == 1.0 and c.dim() == 1)):
        return F.linear(a, b, c)  # (M, K) x (N, K)^T + (N,): XNNPACK's fully-connected pattern
    y = torch.matmul(a, b.t() if node.attr("transB", 0) else b)
    if alpha != 1.0:
        y = y * alpha
    if c is not None:
        y = y + (c * beta if beta != 1.0 else c)
    return y


def matmul(node: NodeView, a, b):
    if a.dim() >= 3 and a.dim() == b.dim() and tuple(a.shape[:-2]) == tuple(b.shape[:-2]):
        # batched, same batch dims: one bmm, without the expand copies torch.matmul's decomposition adds
        batch = tuple(a.shape[:-2])
        y = torch.bmm(a.reshape(-1, a.shape[-2], a.shape[-1]), b.reshape(-1, b.shape[-2], b.shape[-1]))
        return y.reshape(batch + (a.shape[-2], b.shape[-1]))
    return torch.matmul(a, b)


def _pool_common(node: NodeView, x):
    win = window(node.attributes, node.attr("kernel_shape"))
    begins, ends = resolve_pads(node.attributes, x.shape[2:], win)
    return len(win.kernel), list(win.kernel), list(win.strides), list(win.dilations), begins, ends


def max_pool(node: NodeView, x):
    nd, kernel, strides, dil, begins, ends = _pool_common(node, x)
    ceil = bool(node.attr("ceil_mode", 0))
    eff = [(k - 1) * d + 1 for k, d in zip(kernel, dil)]
    if begins != ends or any(p > e // 2 for p, e in zip(begins, eff)):
        x = F.pad(x, torch_pad_list(begins, ends), value=-math.inf)
        begins = [0] * nd
    fn = getattr(F, f"max_pool{nd}d")
    return fn(x, kernel, strides, begins, dil, ceil_mode=ceil)


def average_pool(node: NodeView, x):
    nd, kernel, strides, _, begins, ends = _pool_common(node, x)
    ceil = bool(node.attr("ceil_mode", 0))
    include = bool(node.attr("count_include_pad", 0))
    fn = getattr(F, f"avg_pool{nd}d")
    if begins == ends and all(p <= k // 2 for p, k in zip(begins, kernel)):
        return fn(x, kernel, strides, begins, ceil_mode=ceil, count_include_pad=include)
    padded = F.pad(x, torch_pad_list(begins, ends))
    y = fn(padded, kernel, strides, 0, ceil_mode=ceil, count_include_pad=True)
    if include:
        return y
    # average over the real elements only: divide by the pooled mask of ones
    ones = F.pad(torch.ones((1, 1) + tuple(x.shape[2:]), dtype=x.dtype), torch_pad_list(begins, ends))
    return y / fn(ones, kernel, strides, 0, ceil_mode=ceil, count_include_pad=True)


def global_average_pool(node: NodeView, x):
    return x.mean(dim=tuple(range(2, x.dim())), keepdim=True)


def global_max_pool(node: NodeView, x):
    return x.amax(dim=tuple(range(2, x.dim())), keepdim=True)


def batch_norm(node: NodeView, x, scale, bias, mean, var):
    return F.batch_norm(x, mean, var, scale, bias, False, 0.0, node.attr("epsilon", 1e-5))


def layer_norm(node: NodeView, x, scale, bias=None):
    axis = node.attr("axis", -1) % x.dim()
    shape = tuple(x.shape[axis:])
    eps = node.attr("epsilon", 1e-5)
    if tuple(scale.shape) == shape and (bias is None or tuple(bias.shape) == shape):
        return F.layer_norm(x, shape, scale, bias, eps)
    y = F.layer_norm(x, shape, None, None, eps) * scale  # scale/bias broadcast (spec allows it)
    return y + bias if bias is not None else y


def lrn(node: NodeView, x):
    """ONNX LRN: ``y = x / (bias + alpha / size * sum(x_c'^2))^beta`` over channels
    ``c - floor((size-1)/2) .. c + ceil((size-1)/2)`` (spec: LRN)."""
    size = node.attr("size")
    alpha, beta, bias = node.attr("alpha", 1e-4), node.attr("beta", 0.75), node.attr("bias", 1.0)
    n, c = x.shape[0], x.shape[1]
    sq = (x * x).reshape(n, 1, c, -1)
    sq = F.pad(sq, (0, 0, (size - 1) // 2, size // 2))
    total = F.avg_pool2d(sq, (size, 1), stride=1) * size
    return x / (bias + (alpha / size) * total.reshape(x.shape)) ** beta


def _softmax(fn_name: str):
    def lower(node: NodeView, x):
        rank = x.dim()
        if node.opset >= 13:
            return getattr(torch, fn_name)(x, node.attr("axis", -1))
        axis = node.attr("axis", 1) % rank  # opset < 13: coerce to 2-D at axis
        if axis == rank - 1:
            return getattr(torch, fn_name)(x, -1)
        flat = x.reshape(tuple(x.shape[:axis]) + (-1,))
        return getattr(torch, fn_name)(flat, -1).reshape(x.shape)

    return lower


# --- Resize ----------------------------------------------------------------

_RESIZE_ATTRS = frozenset(
    {"mode", "coordinate_transformation_mode", "nearest_mode", "cubic_coeff_a", "exclude_outside",
     "extrapolation_value", "antialias", "keep_aspect_ratio_policy"}
)


def _resize_check(node: NodeView) -> str | None:
    """What ``F.interpolate`` reproduces of ONNX Resize.

    Checked on symbolic dims too (``static_shapes``: the partition is
    specialized before compiling): from constant scales where they are given,
    from the inferred shapes otherwise; a check that needs a dim that is not
    known yet declines the node, saying so.
    """
    mode = node.attr("mode", "nearest")
    ctm = node.attr("coordinate_transformation_mode", "half_pixel")
    if node.attr("antialias", 0) or node.attr("exclude_outside", 0):
        return "Resize antialias / exclude_outside not handled"
    if node.attr("keep_aspect_ratio_policy", "stretch") != "stretch":
        return "Resize keep_aspect_ratio_policy other than 'stretch' not handled"
    x, y = node.inputs[0], node.outputs[0]
    scales = _resize_scales(node)
    if scales is not None:
        if scales.size < 2 or (scales[:2] != 1).any():
            return "Resize of the batch or channel dim not handled (only spatial dims)"
    elif y.shape is None or list(x.shape[:2]) != list(y.shape[:2]) or None in x.shape[:2]:
        return "Resize of the batch or channel dim not handled (only spatial dims), or not known to be spatial only"
    if mode == "nearest":
        if ctm == "asymmetric" and node.attr("nearest_mode", "round_prefer_floor") == "floor":
            return None
        if ctm in ("half_pixel", "pytorch_half_pixel") and node.attr("nearest_mode", "round_prefer_floor") in (
            "round_prefer_floor", "round_prefer_ceil"
        ):
            if scales is not None:
                integral = all(float(s).is_integer() and s >= 1 for s in scales[2:])
            elif x.is_static and y.is_static:
                integral = all(o % i == 0 for i, o in zip(x.shape[2:], y.shape[2:]))
            else:
                return "Resize nearest with half_pixel and sizes needs static spatial dims to check the upscale factors"
            if integral:
                return None
            return "Resize nearest with half_pixel needs integer upscale factors (it then equals floor indexing)"
        return f"Resize nearest with {ctm} / {node.attr('nearest_mode', 'round_prefer_floor')} not handled"
    if mode == "linear":
        if ctm in ("align_corners", "half_pixel"):
            return None
        if ctm == "pytorch_half_pixel":
            out = y.shape[2:] if y.shape is not None else [None]
            if all(isinstance(d, int) and d > 1 for d in out):
                return None
            return "Resize linear pytorch_half_pixel needs known output spatial dims > 1"
        return f"Resize linear with coordinate_transformation_mode={ctm} not handled"
    return f"Resize mode={mode} not handled (handled: nearest, linear)"


def _resize_scales(node: NodeView):
    """The constant, non-empty ``scales`` of a Resize node, or None."""
    slot = 1 if node.opset < 11 else 2
    if slot < len(node.inputs) and node.inputs[slot].name and node.inputs[slot].const is not None:
        scales = node.inputs[slot].const.reshape(-1)
        return scales if scales.size else None
    return None


def resize(node: NodeView, x, roi=None, scales=None, sizes=None):
    if node.opset < 11:  # Resize-10: (X, scales)
        scales, roi = roi, None
    mode = node.attr("mode", "nearest")
    nd = x.dim() - 2
    out = list(node.outputs[0].shape[2:])
    kwargs = {}
    if scales is not None and is_host(scales) and scales.size:
        kwargs = {"scale_factor": [float(s) for s in scales.reshape(-1)[2:]], "recompute_scale_factor": False}
    else:
        kwargs = {"size": out}
    if mode == "nearest":
        if node.attr("coordinate_transformation_mode", "half_pixel") != "asymmetric":
            kwargs = {"size": out}
        return F.interpolate(x, mode="nearest", **kwargs)
    align = node.attr("coordinate_transformation_mode", "half_pixel") == "align_corners"
    return F.interpolate(x, mode={1: "linear", 2: "bilinear", 3: "trilinear"}[nd], align_corners=align, **kwargs)


def _conv_weight_rank(node: NodeView) -> str | None:
    w = node.inputs[1]
    if w.rank != node.inputs[0].rank:
        return f"{node.op_type} weight rank {w.rank} differs from input rank {node.inputs[0].rank}"
    return None


def _gemm_ranks(node: NodeView) -> str | None:
    if node.inputs[0].rank != 2 or node.inputs[1].rank != 2:
        return "Gemm needs 2-D A and B"
    return None


def _bn_inference(node: NodeView) -> str | None:
    if node.attr("training_mode", 0):
        return "BatchNormalization training_mode=1 not handled (inference only)"
    if node.opset < 9 and not node.attr("spatial", 1):
        return "BatchNormalization spatial=0 not handled"
    if node.inputs[0].rank is not None and node.inputs[0].rank < 2:
        return "BatchNormalization on rank < 2 not handled"
    return None


def _pool_checks(node: NodeView) -> str | None:
    if node.op_type == "MaxPool" and node.attr("storage_order", 0):
        return "MaxPool storage_order=1 only matters for the Indices output, which is not produced"
    if node.op_type == "AveragePool" and any(d != 1 for d in node.attr("dilations", [1])):
        return "AveragePool dilations other than 1 not handled"
    return None


def _lrn_check(node: NodeView) -> str | None:
    if node.inputs[0].rank is None or node.inputs[0].rank < 3:
        return "LRN needs an (N, C, ...) input of rank >= 3"
    if node.attr("size", 1) % 2 == 0:
        # the spec's window is asymmetric for an even size; ONNX Runtime refuses it, so nothing checks ours
        return "LRN with an even size not handled (no reference implementation to verify against)"
    return None


def _resize_host_inputs(node: NodeView) -> str | None:
    for t in node.inputs[1:]:
        if t.name and t.const is None:
            return f"Resize input '{t.name}' (roi/scales/sizes) must be a constant"
    return None


_CONV_ATTRS = frozenset({"auto_pad", "dilations", "group", "kernel_shape", "pads", "strides"})
_POOL_ATTRS = frozenset({"auto_pad", "ceil_mode", "dilations", "kernel_shape", "pads", "strides"})

LOWERINGS: tuple[Lowering, ...] = (
    Lowering("Conv", conv, _CONV_ATTRS, constraints=(spatial_rank, _no_3d, _conv_weight_rank)),
    Lowering(
        "ConvTranspose",
        conv_transpose,
        frozenset({"dilations", "group", "kernel_shape", "output_padding", "pads", "strides", "auto_pad"}),
        constraints=(spatial_rank, _no_3d, _conv_weight_rank, attr_in("auto_pad", ("NOTSET", "VALID"), "NOTSET")),
    ),
    Lowering("Gemm", gemm, frozenset({"alpha", "beta", "transA", "transB"}), constraints=(_gemm_ranks,)),
    Lowering("MatMul", matmul),
    Lowering("MaxPool", max_pool, _POOL_ATTRS | {"storage_order"}, constraints=(spatial_rank, _no_3d, _pool_checks)),
    Lowering(
        "AveragePool",
        average_pool,
        _POOL_ATTRS | {"count_include_pad"},
        constraints=(spatial_rank, _no_3d, _pool_checks),
    ),
    Lowering("GlobalAveragePool", global_average_pool),
    Lowering("GlobalMaxPool", global_max_pool),
    Lowering(
        "BatchNormalization",
        batch_norm,
        frozenset({"epsilon", "momentum", "spatial", "training_mode", "is_test", "consumed_inputs"}),
        since=6,
        constraints=(_bn_inference,),
    ),
    Lowering(
        "LayerNormalization",
        layer_norm,
        frozenset({"axis", "epsilon", "stash_type"}),
        since=17,
        constraints=(attr_in("stash_type", (1,), 1),),
    ),
    Lowering("LRN", lrn, frozenset({"alpha", "beta", "bias", "size"}), constraints=(_lrn_check,)),
    Lowering("Softmax", _softmax("softmax"), frozenset({"axis"})),
    Lowering("LogSoftmax", _softmax("log_softmax"), frozenset({"axis"})),
    Lowering(
        "Resize",
        resize,
        _RESIZE_ATTRS,
        since=10,
        host_inputs=(1, 2, 3),
        constraints=(spatial_rank, _resize_host_inputs, _resize_check),
    ),
)
