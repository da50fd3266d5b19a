"""A node's attributes as Python values (ONNX IR spec, "Attributes")."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import onnx
from onnx import helper, numpy_helper

from unified.errors import ModelError

__all__ = ["decode_attributes", "attr_ints"]


def decode_attributes(node: onnx.NodeProto, where: str | None = None) -> dict[str, Any]:
    """Attribute name -> Python value.

    ints / floats / lists stay Python numbers and lists, strings are decoded
    to ``str`` (UTF-8), tensors become ``numpy.ndarray``, graphs stay
    ``onnx.GraphProto``.

    Args:
        node: the node.
        where: the node's name for error messages (default ``node.name`` or
            its op type).

    Raises:
        ModelError: an attribute that cannot be decoded (not UTF-8, a corrupt
            tensor).
    """
    out: dict[str, Any] = {}
    for a in node.attribute:
        try:
            v = helper.get_attribute_value(a)
            if isinstance(v, bytes):
                v = v.decode()
            elif isinstance(v, list) and v and isinstance(v[0], bytes):
                v = [x.decode() for x in v]
            elif isinstance(v, onnx.TensorProto):
                v = numpy_helper.to_array(v)
        except Exception as exc:
            raise ModelError(
                f"attribute '{a.name}' of node '{where or node.name or node.op_type}' ({node.op_type}) cannot be "
                f"decoded ({type(exc).__name__}: {exc}); the model is corrupt"
            ) from None
        out[a.name] = v
    return out


def attr_ints(attrs: Mapping[str, Any], name: str, default: Sequence[int] | None) -> list[int] | None:
    """Attribute ``name`` as a list of Python ints, ``default`` when absent
    (None stays None)."""
    v = attrs.get(name)
    if v is None:
        return None if default is None else [int(x) for x in default]
    return [int(x) for x in v]
