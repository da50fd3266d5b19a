"""Graph rewrites that make ONNX Runtime compute what the ONNX spec says.

The onnxruntime delegate applies these to a partition before building its
session, and claims the rewritten nodes.

``Resize`` with ``coordinate_transformation_mode="align_corners"`` given
``scales``: the spec (ONNX Operators, Resize; ``onnx.reference``'s
``_interpolate_1d_with_x``) maps an output coordinate ``x`` to
``x * (L - 1) / (L * s - 1)`` with the *unfloored* resized length ``L * s``
(0 when ``L * s == 1``). ONNX Runtime 1.31 divides by the floored length
``floor(L * s) - 1`` instead, so the two differ whenever ``L * s`` is not an
integer (measured up to 1.3 absolute error at s = 0.6 or 1.7). ORT's
``tf_crop_and_resize`` mode maps ``x`` to
``x * (end - start) * (L - 1) / (floor(L * s) - 1) + start * (L - 1)``, so the
ROI ``start = 0, end = (floor(L * s) - 1) / (L * s - 1)`` (0 when
``L * s <= 1``) reproduces the spec's coordinates exactly, with runtime scales
too; the coordinates stay inside ``[0, L - 1]``, so no extrapolation happens.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from unified.onnx import decode_attributes

__all__ = ["rewrite_align_corners_resize", "align_corners_resize_rewritable"]


def align_corners_resize_rewritable(node: onnx.NodeProto) -> bool:
    """A linear/cubic align_corners Resize given ``scales`` (no antialias)."""
    if node.op_type != "Resize" or node.domain not in ("", "ai.onnx"):
        return False
    attrs = decode_attributes(node)
    mode = attrs.get("mode", "nearest")
    ctm = attrs.get("coordinate_transformation_mode", "half_pixel")
    return (
        ctm == "align_corners"
        and mode in ("linear", "cubic")
        and not attrs.get("antialias", 0)
        and len(node.input) >= 3
        and bool(node.input[2])
        and (len(node.input) < 4 or not node.input[3])
    )


def rewrite_align_corners_resize(model: onnx.ModelProto) -> onnx.ModelProto:
    """Return ``model`` with every rewritable Resize turned into
    ``tf_crop_and_resize`` with a computed ROI (a copy; the input is kept).

    Returns the model itself when there is nothing to rewrite.
    """
    if not any(align_corners_resize_rewritable(n) for n in model.graph.node):
        return model
    out = onnx.ModelProto()
    out.CopyFrom(model)
    g = out.graph
    nodes: list[onnx.NodeProto] = []
    for i, n in enumerate(g.node):
        if not align_corners_resize_rewritable(n):
            nodes.append(n)
            continue
        nodes.extend(_roi_nodes(n, f"_unified_ac{i}", g))
    del g.node[:]
    g.node.extend(nodes)
    return out


def _roi_nodes(node: onnx.NodeProto, p: str, g: onnx.GraphProto) -> list[onnx.NodeProto]:
    x, scales = node.input[0], node.input[2]
    axes = decode_attributes(node).get("axes")
    g.initializer.extend(
        [
            numpy_helper.from_array(np.array(1.0, np.float32), f"{p}_one"),
            numpy_helper.from_array(np.array(0.0, np.float32), f"{p}_zero"),
        ]
    )
    made = [helper.make_node("Shape", [x], [f"{p}_shape"])]
    length = f"{p}_shape"
    if axes is not None:
        g.initializer.append(numpy_helper.from_array(np.array(axes, np.int64), f"{p}_axes"))
        made.append(helper.make_node("Gather", [f"{p}_shape", f"{p}_axes"], [f"{p}_shape_axes"], axis=0))
        length = f"{p}_shape_axes"
    made += [
        helper.make_node("Cast", [length], [f"{p}_len"], to=onnx.TensorProto.FLOAT),
        helper.make_node("Mul", [f"{p}_len", scales], [f"{p}_resized"]),  # L * s, unfloored
        helper.make_node("Floor", [f"{p}_resized"], [f"{p}_out"]),
        helper.make_node("Sub", [f"{p}_out", f"{p}_one"], [f"{p}_num"]),
        helper.make_node("Sub", [f"{p}_resized", f"{p}_one"], [f"{p}_den"]),
        helper.make_node("Greater", [f"{p}_den", f"{p}_zero"], [f"{p}_pos"]),
        helper.make_node("Where", [f"{p}_pos", f"{p}_den", f"{p}_one"], [f"{p}_safe_den"]),
        helper.make_node("Div", [f"{p}_num", f"{p}_safe_den"], [f"{p}_ratio"]),
        helper.make_node("Where", [f"{p}_pos", f"{p}_ratio", f"{p}_zero"], [f"{p}_end"]),
        helper.make_node("Sub", [f"{p}_len", f"{p}_len"], [f"{p}_start"]),
        helper.make_node("Concat", [f"{p}_start", f"{p}_end"], [f"{p}_roi"], axis=0),
    ]
    resize = onnx.NodeProto()
    resize.CopyFrom(node)
    del resize.input[:]
    resize.input.extend([x, f"{p}_roi", scales])
    for a in resize.attribute:
        if a.name == "coordinate_transformation_mode":
            a.s = b"tf_crop_and_resize"
    made.append(resize)
    return made
