"""The ``tflite`` delegate (LiteRT): ONNX partitions compiled to ``.tflite``
flatbuffers with LiteRT's schema bindings and run by its interpreter.

Layout of the package:

* ``builder.py`` — flatbuffer tensors, buffers, operator codes, packing;
* ``convert.py`` — values, NCHW/NHWC layouts, the conversion loop;
* ``fuse.py`` — BatchNormalization folding and activation fusion;
* ``ops_conv.py``, ``ops_linear.py``, ``ops_elementwise.py``, ``ops_shape.py`` —
  op converters by family (image ops; matrix products and normalizations;
  elementwise and QDQ; data movement);
* ``support.py`` — the op-support table (what is claimed, and why not);
* ``delegate.py`` — the :class:`TFLiteDelegate` (options, availability, compile, load);
* ``executable.py`` — :class:`TFLiteExecutable`: the LiteRT interpreter (run, serialize);
* ``quiet.py`` — keeps LiteRT's native log lines off stderr.

Heavy imports (ai_edge_litert, flatbuffers) happen inside functions, so
importing this package is cheap.
"""

from __future__ import annotations

from unified.hookspecs import hookimpl

from .delegate import TFLiteDelegate
from .executable import TFLiteExecutable

__all__ = ["TFLiteDelegate", "TFLiteExecutable"]


@hookimpl
def unified_delegates() -> list:
    return [TFLiteDelegate()]
