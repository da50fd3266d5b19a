"""The ONNX layer every delegate shares: one reading of ONNX semantics.

A delegate's lowering reads ONNX nodes through this package instead of
keeping its own copy of the spec's rules:

========================  ====================================================
module                    what it answers
========================  ====================================================
:mod:`.dtypes`            ONNX element type <-> NumPy dtype, and its name
:mod:`.attributes`        a node's attributes as Python values; int lists
:mod:`.node`              :class:`Node`, a light read-only view of a NodeProto
:mod:`.spatial`           strides / dilations / pads / ``auto_pad`` of Conv,
                          ConvTranspose and pooling nodes
:mod:`.fold`              one node on constant inputs (``onnx.reference``),
                          and whole-model folding of shape computations
:mod:`.topology`          producers, consumers, a node list's inputs and
                          outputs, and liveness (when a value may be freed)
:mod:`.values`            value name -> type / shape of a (partition) model
========================  ====================================================

Everything here is pure ONNX: it imports ``onnx`` and NumPy, never a
delegate's framework, so a plugin author can build on it.
"""

from unified.onnx.attributes import attr_ints, decode_attributes
from unified.onnx.dtypes import dtype_name, from_numpy, numpy_name, to_numpy
from unified.onnx.fold import NON_DETERMINISTIC, evaluate_node, has_subgraph
from unified.onnx.node import Node
from unified.onnx.spatial import Window, conv_transpose_pads, resolve_pads, same_pads, window
from unified.onnx.topology import consumers, io_names, last_uses, node_reads, producers
from unified.onnx.values import dims, elem_type, numel, static_shape, value_types

__all__ = [
    "attr_ints",
    "decode_attributes",
    "dtype_name",
    "from_numpy",
    "numpy_name",
    "to_numpy",
    "NON_DETERMINISTIC",
    "evaluate_node",
    "has_subgraph",
    "Node",
    "Window",
    "window",
    "same_pads",
    "resolve_pads",
    "conv_transpose_pads",
    "consumers",
    "producers",
    "io_names",
    "last_uses",
    "node_reads",
    "dims",
    "elem_type",
    "numel",
    "static_shape",
    "value_types",
]
