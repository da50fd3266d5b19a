"""Strides, dilations and padding of Conv, ConvTranspose and pooling nodes.

One reading of the ONNX operator spec (Conv, ConvTranspose, AveragePool,
MaxPool, LpPool; https://onnx.ai/onnx/operators/): pads are
``[x1_begin, x2_begin, ..., x1_end, x2_end, ...]``; ``auto_pad`` SAME_UPPER /
SAME_LOWER choose pads so that ``out = ceil(in / stride)``, the odd pad at
the end (UPPER) or the beginning (LOWER); VALID means no padding.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

__all__ = ["Window", "window", "same_pads", "resolve_pads", "conv_transpose_pads"]


@dataclass(frozen=True)
class Window:
    """Sliding-window parameters of one node, one entry per spatial dim.

    Attributes:
        kernel: kernel size per spatial dim.
        strides: stride per dim (default 1).
        dilations: dilation per dim (default 1).
        group: Conv/ConvTranspose ``group`` (1 for pooling).
    """

    kernel: tuple[int, ...]
    strides: tuple[int, ...]
    dilations: tuple[int, ...]
    group: int = 1


def window(attrs: Mapping[str, Any], kernel: Sequence[int]) -> Window:
    """:class:`Window` of a node from its attributes.

    Args:
        attrs: the node's attributes (``strides``, ``dilations``, ``group``).
        kernel: the kernel's spatial size: ``kernel_shape`` for pooling, the
            weight's dims 2.. for Conv.
    """
    n = len(kernel)
    return Window(
        kernel=tuple(int(k) for k in kernel),
        strides=tuple(int(s) for s in (attrs.get("strides") or [1] * n)),
        dilations=tuple(int(d) for d in (attrs.get("dilations") or [1] * n)),
        group=int(attrs.get("group", 1)),
    )


def same_pads(size: int, kernel: int, stride: int, dilation: int, upper: bool = True) -> tuple[int, int]:
    """(begin, end) padding of one dim under ``auto_pad`` SAME_UPPER (or LOWER).

    Total ``max((ceil(size / stride) - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)``
    (ONNX Conv spec), the odd element at the end for UPPER, the beginning for
    LOWER. TFLite's and XNNPACK's SAME padding equal SAME_UPPER.
    """
    out = -(-size // stride)
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    small, big = total // 2, total - total // 2
    return (small, big) if upper else (big, small)


def resolve_pads(attrs: Mapping[str, Any], in_sizes: Sequence[int], w: Window) -> tuple[list[int], list[int]]:
    """Begin and end pads of a Conv or pooling node, one per spatial dim.

    Args:
        attrs: the node's attributes (``auto_pad``, ``pads``).
        in_sizes: the input's spatial dims (used only for SAME_*).
        w: the node's :class:`Window`.

    Returns:
        ``(begins, ends)``, lists of ints.

    Raises:
        ValueError: ``auto_pad`` is not one of NOTSET, VALID, SAME_UPPER,
            SAME_LOWER, or ``pads`` has the wrong length.
    """
    n = len(w.kernel)
    auto = attrs.get("auto_pad", "NOTSET") or "NOTSET"
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        pairs = [same_pads(int(in_sizes[i]), w.kernel[i], w.strides[i], w.dilations[i], auto == "SAME_UPPER")
                 for i in range(n)]
        return [b for b, _ in pairs], [e for _, e in pairs]
    if auto == "VALID":
        return [0] * n, [0] * n
    if auto != "NOTSET":
        raise ValueError(f"auto_pad={auto!r} is not one of NOTSET, VALID, SAME_UPPER, SAME_LOWER")
    pads = [int(p) for p in (attrs.get("pads") or [0] * (2 * n))]
    if len(pads) != 2 * n:
        raise ValueError(f"pads has {len(pads)} values; expected {2 * n} (begin and end per spatial dim)")
    return pads[:n], pads[n:]


def conv_transpose_pads(
    attrs: Mapping[str, Any], in_sizes: Sequence[int], w: Window
) -> tuple[list[int], list[int], list[int]]:
    """Begin pads, end pads and output spatial size of a ConvTranspose node.

    ONNX ConvTranspose spec: ``out = stride * (in - 1) + output_padding +
    ((kernel - 1) * dilation + 1) - pad_begin - pad_end``. With ``output_shape``
    or ``auto_pad`` SAME_* (``out = in * stride``) the pads follow from the
    wanted output: total ``stride * (in - 1) + output_padding + ((kernel - 1) *
    dilation + 1) - out``, split with the odd element at the end for
    SAME_UPPER and at the beginning otherwise (SAME_LOWER, or NOTSET with
    ``output_shape``), as the spec says and ONNX Runtime computes.

    Returns:
        ``(begins, ends, out_sizes)``.
    """
    n = len(w.kernel)
    out_pad = [int(p) for p in (attrs.get("output_padding") or [0] * n)]
    auto = attrs.get("auto_pad", "NOTSET") or "NOTSET"
    full = [w.strides[i] * (int(in_sizes[i]) - 1) + out_pad[i] + (w.kernel[i] - 1) * w.dilations[i] + 1
            for i in range(n)]
    if attrs.get("output_shape") is not None or auto in ("SAME_UPPER", "SAME_LOWER"):
        if attrs.get("output_shape") is not None:
            outs = [int(o) for o in attrs["output_shape"]][-n:]
        else:
            outs = [int(in_sizes[i]) * w.strides[i] for i in range(n)]
        begins, ends = [], []
        for i in range(n):
            total = full[i] - outs[i]
            small, big = total // 2, total - total // 2
            b, e = (small, big) if auto == "SAME_UPPER" else (big, small)
            begins.append(b)
            ends.append(e)
        return begins, ends, outs
    if auto == "VALID":
        return [0] * n, [0] * n, full
    pads = [int(p) for p in (attrs.get("pads") or [0] * (2 * n))]
    begins, ends = pads[:n], pads[n:]
    return begins, ends, [full[i] - begins[i] - ends[i] for i in range(n)]
