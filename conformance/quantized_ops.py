"""Source ``quantized-ops``: the quantized operators, and float ops in QDQ form.

Two kinds of case, each one small graph:

* the quantized operators themselves — ``QuantizeLinear``,
  ``DequantizeLinear`` (per tensor, per axis, blocked int4), ``QLinearConv``,
  ``QLinearMatMul``, ``ConvInteger``, ``MatMulInteger``,
  ``DynamicQuantizeLinear``;
* ``QDQ/<op>`` — a float op (Conv, depthwise Conv, Gemm, MatMul, Add, Mul,
  AveragePool, Concat, Relu) wrapped the way ``onnxruntime.quantization``
  writes ``QuantFormat.QDQ`` with ``per_channel=True``: every activation
  input a graph input through ``QuantizeLinear`` -> ``DequantizeLinear``
  (int8, asymmetric: scale and zero point from its range), weights int8
  symmetric per output channel behind ``DequantizeLinear`` (axis 0 of Conv and
  Gemm ``transB=1`` weights, axis 1 of MatMul weights), biases int32 with
  scale ``s_x * s_w`` per channel, the op's output through ``QuantizeLinear``
  (int8, asymmetric, range of the float output), which is the graph output.

Activation ranges follow ONNX Runtime's ``compute_scale_zp``: the range is
widened to include 0, ``scale = (max - min) / (qmax - qmin)``,
``zero_point = round(qmin - min / scale)``.

Expected outputs come from ``onnx.reference`` (the ONNX spec's Python
implementation, oracle ``"reference"``), independent of ONNX Runtime, which
the ``onnxruntime`` delegate runs. Tolerance: the int8/uint8 profile, +-1
(one quantization step: the NNAPI CTS rule for quantized outputs), with the
share of elements off by one reported per output (``off_by_one``); int32
outputs (ConvInteger, MatMulInteger) are exact.

Values are drawn from ``numpy.random.default_rng(crc32(case id))``.
"""

from __future__ import annotations

import functools
import zlib
from typing import Callable, Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from unified.conformance.cases import Case, CaseData, CaseSource

__all__ = ["SOURCE", "QUANTIZED_OPS", "quantized_op_cases", "build_quantized_op", "act_params"]

SOURCE = "quantized-ops"
IR_VERSION = 10
OPSET = 19  # Q/DQ int8/uint8 semantics as at 13 (what onnxruntime.quantization writes); onnx.reference has DQ from 19
_QRANGE = {TensorProto.INT8: (-128, 127), TensorProto.UINT8: (0, 255)}
_NP = {TensorProto.INT8: np.int8, TensorProto.UINT8: np.uint8, TensorProto.INT32: np.int32,
       TensorProto.FLOAT: np.float32}


def act_params(values: np.ndarray, elem: int = TensorProto.INT8) -> tuple[np.float32, np.integer]:
    """Asymmetric (scale, zero point) of ``values``, ONNX Runtime's ``compute_scale_zp`` rule.

    Args:
        values: float activations.
        elem: ``TensorProto.INT8`` or ``UINT8``.

    Returns:
        (float32 scale, zero point of the quantized dtype).
    """
    qmin, qmax = _QRANGE[elem]
    lo, hi = min(float(np.min(values)), 0.0), max(float(np.max(values)), 0.0)
    scale = (hi - lo) / (qmax - qmin) if hi > lo else 1.0
    zp = int(np.clip(np.round(qmin - lo / scale), qmin, qmax))
    return np.float32(scale), _NP[elem](zp)


def quantize(x: np.ndarray, scale, zp, elem: int = TensorProto.INT8) -> np.ndarray:
    """``saturate(round_half_even(x / scale) + zp)``, the ``QuantizeLinear`` formula (scale broadcast)."""
    qmin, qmax = _QRANGE.get(elem, (np.iinfo(_NP[elem]).min, np.iinfo(_NP[elem]).max))
    return np.clip(np.round(x / scale) + np.asarray(zp, np.int64), qmin, qmax).astype(_NP[elem])


class _Builder:
    """Collects a small graph: inputs with their feeds, initializers, nodes."""

    def __init__(self, rng: np.random.Generator):
        self.rng = rng
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.inputs: list[onnx.ValueInfoProto] = []
        self.feeds: dict[str, np.ndarray] = {}

    def input(self, name: str, value: np.ndarray) -> str:
        value = np.ascontiguousarray(value)
        self.inputs.append(helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(value.dtype),
                                                         value.shape))
        self.feeds[name] = value
        return name

    def init(self, name: str, value) -> str:
        self.inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def node(self, op: str, ins: Sequence[str], outs: Sequence[str], **attrs) -> None:
        self.nodes.append(helper.make_node(op, list(ins), list(outs), name=f"{op.lower()}_{len(self.nodes)}", **attrs))

    def qdq_input(self, name: str, shape: tuple[int, ...], lo: float = -1.0, hi: float = 1.0) -> tuple[str, float]:
        """A float graph input through Q -> DQ (int8, asymmetric); returns (DQ output, scale)."""
        x = self.rng.uniform(lo, hi, shape).astype(np.float32)
        s, z = act_params(x)
        self.input(name, x)
        self.init(f"{name}_scale", s), self.init(f"{name}_zp", z)
        self.node("QuantizeLinear", [name, f"{name}_scale", f"{name}_zp"], [f"{name}_q"])
        self.node("DequantizeLinear", [f"{name}_q", f"{name}_scale", f"{name}_zp"], [f"{name}_dq"])
        return f"{name}_dq", float(s)

    def qdq_weight(self, name: str, w: np.ndarray, axis: int) -> tuple[str, np.ndarray]:
        """Symmetric per-channel int8 weight (channels along ``axis``) behind DQ; returns (name, scales)."""
        red = tuple(i for i in range(w.ndim) if i != axis)
        s = np.maximum(np.max(np.abs(w), axis=red), 1e-8).astype(np.float32) / np.float32(127)
        shape = [1] * w.ndim
        shape[axis] = -1
        q = np.clip(np.round(w / s.reshape(shape)), -127, 127).astype(np.int8)
        self.init(f"{name}_q", q), self.init(f"{name}_scale", s), self.init(f"{name}_zp", np.zeros(s.shape, np.int8))
        self.node("DequantizeLinear", [f"{name}_q", f"{name}_scale", f"{name}_zp"], [f"{name}_dq"], axis=axis)
        return f"{name}_dq", s

    def qdq_bias(self, name: str, b: np.ndarray, scale: np.ndarray) -> str:
        """int32 bias with scale ``s_x * s_w`` (per channel) behind DQ."""
        scale = np.asarray(scale, np.float32)
        self.init(f"{name}_q", np.round(b / scale).astype(np.int32)), self.init(f"{name}_scale", scale)
        self.init(f"{name}_zp", np.zeros(scale.shape, np.int32))
        self.node("DequantizeLinear", [f"{name}_q", f"{name}_scale", f"{name}_zp"], [f"{name}_dq"], axis=0)
        return f"{name}_dq"

    def model(self, outputs: Sequence[tuple[str, int]], opset: int = OPSET) -> onnx.ModelProto:
        graph = helper.make_graph(self.nodes, "quantized", self.inputs,
                                  [helper.make_tensor_value_info(n, t, None) for n, t in outputs],
                                  initializer=self.inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=IR_VERSION,
                                  producer_name="unified.conformance")
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True)
        onnx.checker.check_model(inferred)
        return inferred

    def float_value(self, name: str, opset: int = OPSET) -> np.ndarray:
        """``name`` computed by ``onnx.reference`` on the graph so far (to size an output's range)."""
        from onnx.reference import ReferenceEvaluator

        return ReferenceEvaluator(self.model([(name, TensorProto.FLOAT)], opset)).run(None, self.feeds)[0]

    def q_output(self, name: str, out: str = "y", elem: int = TensorProto.INT8, opset: int = OPSET) -> onnx.ModelProto:
        """Quantize float ``name`` into graph output ``out`` (range from its float value); the model."""
        s, z = act_params(self.float_value(name, opset), elem)
        self.init(f"{out}_scale", s), self.init(f"{out}_zp", z)
        self.node("QuantizeLinear", [name, f"{out}_scale", f"{out}_zp"], [out])
        return self.model([(out, elem)], opset)


def _he(rng: np.random.Generator, shape: tuple[int, ...], fan_in: int) -> np.ndarray:
    # He et al. 2015, "Delving Deep into Rectifiers", eq. 10: std = sqrt(2 / fan_in)
    return rng.normal(0.0, np.sqrt(2.0 / fan_in), shape).astype(np.float32)


# --- QDQ-wrapped float ops ------------------------------------------------------


def _qdq_conv(g: _Builder, depthwise: bool = False) -> onnx.ModelProto:
    c, k = (16, 16) if depthwise else (8, 16)
    x, s_x = g.qdq_input("x", (1, c, 12, 12))
    wshape = (k, 1, 3, 3) if depthwise else (k, c, 3, 3)
    w, s_w = g.qdq_weight("w", _he(g.rng, wshape, int(np.prod(wshape[1:]))), axis=0)
    b = g.qdq_bias("b", g.rng.normal(0, 0.05, k).astype(np.float32), s_x * s_w)
    g.node("Conv", [x, w, b], ["conv"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], group=c if depthwise else 1)
    return g.q_output("conv")


def _qdq_gemm(g: _Builder) -> onnx.ModelProto:
    x, s_x = g.qdq_input("x", (2, 64))
    w, s_w = g.qdq_weight("w", _he(g.rng, (32, 64), 64), axis=0)
    b = g.qdq_bias("b", g.rng.normal(0, 0.05, 32).astype(np.float32), s_x * s_w)
    g.node("Gemm", [x, w, b], ["gemm"], transB=1)
    return g.q_output("gemm")


def _qdq_matmul(g: _Builder) -> onnx.ModelProto:
    x, _ = g.qdq_input("x", (1, 16, 64))
    w, _ = g.qdq_weight("w", _he(g.rng, (64, 32), 64), axis=1)
    g.node("MatMul", [x, w], ["mm"])
    return g.q_output("mm")


def _qdq_binary(op: str, shape_b: tuple[int, ...]) -> Callable[[_Builder], onnx.ModelProto]:
    def build(g: _Builder) -> onnx.ModelProto:
        a, _ = g.qdq_input("a", (1, 16, 8, 8))
        b, _ = g.qdq_input("b", shape_b, lo=-2.0, hi=2.0)  # a different scale than a's
        g.node(op, [a, b], ["y_f"])
        return g.q_output("y_f")

    return build


def _qdq_unary(op: str, **attrs) -> Callable[[_Builder], onnx.ModelProto]:
    def build(g: _Builder) -> onnx.ModelProto:
        x, _ = g.qdq_input("x", (1, 16, 12, 12))
        g.node(op, [x], ["y_f"], **attrs)
        return g.q_output("y_f")

    return build


def _qdq_concat(g: _Builder) -> onnx.ModelProto:
    a, _ = g.qdq_input("a", (1, 8, 6, 6))
    b, _ = g.qdq_input("b", (1, 16, 6, 6), lo=-3.0, hi=1.0)
    g.node("Concat", [a, b], ["cat"], axis=1)
    return g.q_output("cat")


# --- the quantized operators ----------------------------------------------------


def _ref(op: str, values: Sequence[np.ndarray], **attrs) -> np.ndarray:
    """One float node run by ``onnx.reference`` (sizes the output range of a QLinear op)."""
    from onnx.reference import ReferenceEvaluator

    names = [f"i{k}" for k in range(len(values))]
    node = helper.make_node(op, names, ["o"], **attrs)
    graph = helper.make_graph([node], "f", [helper.make_tensor_value_info(n, TensorProto.FLOAT, v.shape)
                                            for n, v in zip(names, values)],
                              [helper.make_tensor_value_info("o", TensorProto.FLOAT, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION)
    return ReferenceEvaluator(model).run(None, dict(zip(names, values)))[0]


def _q_input(g: _Builder, name: str, shape: tuple[int, ...], elem: int) -> tuple[str, np.ndarray, np.float32, np.integer]:
    """A quantized graph input drawn from U(-1, 1); returns (name, dequantized value, scale, zero point)."""
    x = g.rng.uniform(-1, 1, shape).astype(np.float32)
    s, z = act_params(x, elem)
    q = quantize(x, s, z, elem)
    g.input(name, q)
    g.init(f"{name}_scale", s), g.init(f"{name}_zp", z)
    return name, (q.astype(np.float32) - np.float32(z)) * s, s, z


def _quantize_linear(elem: int, per_axis: bool) -> Callable[[_Builder], onnx.ModelProto]:
    def build(g: _Builder) -> onnx.ModelProto:
        x = g.input("x", g.rng.uniform(-4, 4, (1, 16, 8, 8)).astype(np.float32))
        if per_axis:
            s = g.rng.uniform(0.01, 0.05, 16).astype(np.float32)
            z = g.rng.integers(-10, 10, 16).astype(_NP[elem])
            g.init("s", s), g.init("z", z)
            g.node("QuantizeLinear", [x, "s", "z"], ["y"], axis=1)
        else:
            g.init("s", np.float32(0.03)), g.init("z", _NP[elem](128 if elem == TensorProto.UINT8 else 3))
            g.node("QuantizeLinear", [x, "s", "z"], ["y"])
        return g.model([("y", elem)])

    return build


def _dequantize_linear(elem: int, per_axis: bool) -> Callable[[_Builder], onnx.ModelProto]:
    def build(g: _Builder) -> onnx.ModelProto:
        lo, hi = (-(2**20), 2**20) if elem == TensorProto.INT32 else _QRANGE[elem]
        g.input("x", g.rng.integers(lo, hi + 1, (1, 16, 8, 8)).astype(_NP[elem]))
        if per_axis:
            g.init("s", g.rng.uniform(0.01, 0.05, 16).astype(np.float32))
            g.init("z", g.rng.integers(100, 150, 16).astype(_NP[elem]))
            g.node("DequantizeLinear", ["x", "s", "z"], ["y"], axis=1)
        else:
            g.init("s", np.float32(0.02)), g.init("z", _NP[elem](0 if elem == TensorProto.INT32 else -5))
            g.node("DequantizeLinear", ["x", "s", "z"], ["y"])
        return g.model([("y", TensorProto.FLOAT)])

    return build


def _dequantize_int4_blocked(g: _Builder) -> onnx.ModelProto:
    """A MatMul weight as blocked int4 (opset 21), as ``unified quantize --weights int4`` writes it."""
    from unified.quantize import pack_int4

    x = g.input("x", g.rng.uniform(-1, 1, (2, 64)).astype(np.float32))
    q, s = pack_int4(_he(g.rng, (64, 32), 64), axis=0, block_size=32)
    g.init("w_q", q), g.init("w_scale", s)
    g.node("DequantizeLinear", ["w_q", "w_scale"], ["w"], axis=0, block_size=32)
    g.node("MatMul", [x, "w"], ["y"])
    return g.model([("y", TensorProto.FLOAT)], opset=21)


def _qlinear_conv(elem: int) -> Callable[[_Builder], onnx.ModelProto]:
    def build(g: _Builder) -> onnx.ModelProto:
        x, xf, sx, _ = _q_input(g, "x", (1, 8, 12, 12), elem)
        w = _he(g.rng, (16, 8, 3, 3), 72)
        sw = (np.max(np.abs(w), axis=(1, 2, 3)) / 127).astype(np.float32)
        wq = quantize(w, sw.reshape(-1, 1, 1, 1), 0)
        bq = np.round(g.rng.normal(0, 0.05, 16) / (sx * sw)).astype(np.int32)
        g.init("w", wq), g.init("w_scale", sw), g.init("w_zp", np.zeros(16, np.int8)), g.init("bias", bq)
        yf = _ref("Conv", [xf, wq.astype(np.float32) * sw.reshape(-1, 1, 1, 1), bq * sx * sw],
                  kernel_shape=[3, 3], pads=[1, 1, 1, 1])
        sy, zy = act_params(yf, elem)
        g.init("y_scale", sy), g.init("y_zp", zy)
        g.node("QLinearConv", [x, "x_scale", "x_zp", "w", "w_scale", "w_zp", "y_scale", "y_zp", "bias"], ["y"],
               kernel_shape=[3, 3], pads=[1, 1, 1, 1])
        return g.model([("y", elem)])

    return build


def _qlinear_matmul(elem: int) -> Callable[[_Builder], onnx.ModelProto]:
    def build(g: _Builder) -> onnx.ModelProto:
        a, af, _, _ = _q_input(g, "a", (1, 16, 64), elem)
        b = _he(g.rng, (64, 32), 64)
        sb, zb = act_params(b, elem)
        bq = quantize(b, sb, zb, elem)
        g.init("b", bq), g.init("b_scale", sb), g.init("b_zp", zb)
        sy, zy = act_params(_ref("MatMul", [af, (bq.astype(np.float32) - np.float32(zb)) * sb]), elem)
        g.init("y_scale", sy), g.init("y_zp", zy)
        g.node("QLinearMatMul", [a, "a_scale", "a_zp", "b", "b_scale", "b_zp", "y_scale", "y_zp"], ["y"])
        return g.model([("y", elem)])

    return build


def _conv_integer(g: _Builder) -> onnx.ModelProto:
    g.input("x", g.rng.integers(0, 256, (1, 4, 10, 10)).astype(np.uint8))
    g.init("w", g.rng.integers(0, 256, (8, 4, 3, 3)).astype(np.uint8))
    g.init("x_zp", np.uint8(128)), g.init("w_zp", np.uint8(120))
    g.node("ConvInteger", ["x", "w", "x_zp", "w_zp"], ["y"], kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    return g.model([("y", TensorProto.INT32)])


def _matmul_integer(g: _Builder) -> onnx.ModelProto:
    g.input("a", g.rng.integers(0, 256, (1, 16, 64)).astype(np.uint8))
    g.init("b", g.rng.integers(-128, 128, (64, 32)).astype(np.int8))
    g.init("a_zp", np.uint8(130)), g.init("b_zp", np.int8(0))
    g.node("MatMulInteger", ["a", "b", "a_zp", "b_zp"], ["y"])
    return g.model([("y", TensorProto.INT32)])


def _dynamic_quantize_linear(g: _Builder) -> onnx.ModelProto:
    g.input("x", g.rng.uniform(-3, 2, (1, 16, 64)).astype(np.float32))
    g.node("DynamicQuantizeLinear", ["x"], ["y", "y_scale", "y_zp"])
    return g.model([("y", TensorProto.UINT8), ("y_scale", TensorProto.FLOAT), ("y_zp", TensorProto.UINT8)])


_I8, _U8, _I32 = TensorProto.INT8, TensorProto.UINT8, TensorProto.INT32

QUANTIZED_OPS: dict[str, tuple[str, str, Callable[[_Builder], onnx.ModelProto]]] = {
    "QuantizeLinear/int8_per_tensor": ("QuantizeLinear", "float32", _quantize_linear(_I8, False)),
    "QuantizeLinear/uint8_per_tensor": ("QuantizeLinear", "float32", _quantize_linear(_U8, False)),
    "QuantizeLinear/int8_per_axis": ("QuantizeLinear", "float32", _quantize_linear(_I8, True)),
    "DequantizeLinear/int8_per_tensor": ("DequantizeLinear", "int8", _dequantize_linear(_I8, False)),
    "DequantizeLinear/uint8_per_axis": ("DequantizeLinear", "uint8", _dequantize_linear(_U8, True)),
    "DequantizeLinear/int32_bias": ("DequantizeLinear", "int32", _dequantize_linear(_I32, False)),
    "DequantizeLinear/int4_blocked_matmul": ("DequantizeLinear", "int4", _dequantize_int4_blocked),
    "QLinearConv/int8_per_channel": ("QLinearConv", "int8", _qlinear_conv(_I8)),
    "QLinearConv/uint8_x": ("QLinearConv", "uint8", _qlinear_conv(_U8)),
    "QLinearMatMul/uint8": ("QLinearMatMul", "uint8", _qlinear_matmul(_U8)),
    "QLinearMatMul/int8": ("QLinearMatMul", "int8", _qlinear_matmul(_I8)),
    "ConvInteger/uint8": ("ConvInteger", "uint8", _conv_integer),
    "MatMulInteger/uint8_int8": ("MatMulInteger", "uint8", _matmul_integer),
    "DynamicQuantizeLinear/float32": ("DynamicQuantizeLinear", "float32", _dynamic_quantize_linear),
    "QDQ/Conv": ("Conv", "int8", _qdq_conv),
    "QDQ/Conv_depthwise": ("Conv", "int8", functools.partial(_qdq_conv, depthwise=True)),
    "QDQ/Gemm": ("Gemm", "int8", _qdq_gemm),
    "QDQ/MatMul": ("MatMul", "int8", _qdq_matmul),
    "QDQ/Add": ("Add", "int8", _qdq_binary("Add", (1, 16, 8, 8))),
    "QDQ/Mul": ("Mul", "int8", _qdq_binary("Mul", (1, 16, 1, 1))),
    "QDQ/AveragePool": ("AveragePool", "int8", _qdq_unary("AveragePool", kernel_shape=[2, 2], strides=[2, 2])),
    "QDQ/Concat": ("Concat", "int8", _qdq_concat),
    "QDQ/Relu": ("Relu", "int8", _qdq_unary("Relu")),
}
"""Case name -> (op under test, dtype column, builder)."""

ORACLE_OVERRIDES: dict[str, str] = {}
"""Case name -> oracle, where ``onnx.reference`` is known wrong (none found with onnx 1.23)."""


def build_quantized_op(name: str) -> CaseData:
    """Build case ``name`` of :data:`QUANTIZED_OPS` (the loader of every case).

    Raises:
        KeyError: unknown name.
    """
    _, _, build = QUANTIZED_OPS[name]
    g = _Builder(np.random.default_rng(zlib.crc32(f"{SOURCE}/{name}".encode())))
    model = build(g)
    return CaseData(model, [(g.feeds, None)])


def _dtypes(name: str) -> tuple[str, ...]:
    op, dtype, _ = QUANTIZED_OPS[name]
    out = {dtype}
    if name.startswith("QDQ/") or op in ("QuantizeLinear", "DynamicQuantizeLinear"):
        out |= {"float32", "int8" if "uint8" not in name else "uint8"}
    elif op == "DequantizeLinear":
        out.add("float32")
    elif op in ("ConvInteger", "MatMulInteger"):
        out.add("int32")
    return tuple(sorted(out))


def quantized_op_cases() -> list[Case]:
    """Every case of :data:`QUANTIZED_OPS`."""
    out = []
    for name, (op, dtype, _) in QUANTIZED_OPS.items():
        opset = 21 if "int4" in name else OPSET
        out.append(Case(
            id=f"{SOURCE}/{name}", source=SOURCE, loader=functools.partial(build_quantized_op, name),
            op=op, opset=opset, dtype=dtype, dtypes=_dtypes(name), group=op,
            oracle=ORACLE_OVERRIDES.get(name, "reference"),
            tags=("qdq", "quantized") if name.startswith("QDQ/") else ("quantized",),
        ))
    return out


def fast_subset(cases: Sequence[Case]) -> list[Case]:
    """Every case: the source is small (23 one-node or QDQ-group graphs, under a second each)."""
    return list(cases)


def source() -> CaseSource:
    return CaseSource(
        SOURCE,
        "quantized operators (Q/DQ, QLinear*, *Integer, DynamicQuantizeLinear) and float ops in QDQ form, "
        "expected from onnx.reference",
        quantized_op_cases,
        fast_subset,
    )
