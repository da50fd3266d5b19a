"""A light, read-only view of one ``onnx.NodeProto`` for lowering code."""

from __future__ import annotations

from typing import Any

import onnx

from unified.onnx.attributes import decode_attributes

__all__ = ["Node"]


class Node:
    """What a delegate's lowering sees of one ONNX node.

    Unlike :class:`unified.graph.NodeView` (which the planner builds with
    every value's type and shape), this needs only the NodeProto, so a
    delegate can wrap the nodes of a partition model it received.

    Attributes:
        proto: the NodeProto (do not modify).
        name: the node name, or its op type when unnamed.
        op_type / domain: as in the proto.
        inputs / outputs: value names; "" for an omitted optional slot.
        attrs: attribute name -> Python value (see
            :func:`unified.onnx.attributes.decode_attributes`).
        opset: the opset the model imports for the node's domain (0 if unknown).

    Raises:
        ModelError: (at construction) an attribute cannot be decoded.
    """

    __slots__ = ("proto", "name", "op_type", "domain", "inputs", "outputs", "attrs", "opset")

    def __init__(self, proto: onnx.NodeProto, opset: int = 0):
        self.proto = proto
        self.name = proto.name or proto.op_type
        self.op_type = proto.op_type
        self.domain = proto.domain
        self.inputs = list(proto.input)
        self.outputs = list(proto.output)
        self.attrs = decode_attributes(proto, self.name)
        self.opset = opset

    def attr(self, name: str, default: Any = None) -> Any:
        """Attribute ``name``, or ``default`` when the node does not set it."""
        return self.attrs.get(name, default)

    def input(self, i: int) -> str:
        """Name of input ``i``; "" when omitted or past the end."""
        return self.inputs[i] if i < len(self.inputs) else ""

    def output(self, i: int) -> str:
        """Name of output ``i``; "" when omitted or past the end."""
        return self.outputs[i] if i < len(self.outputs) else ""

    def __repr__(self) -> str:
        return f"Node({self.op_type} '{self.name}')"
