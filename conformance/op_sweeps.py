"""Source ``ops``: single-op sweeps at the shapes and dtypes real models use.

Shapes come from the nets the suite runs whole (``conformance/nets.py``,
MobileNet-style CNNs, a transformer encoder block, the ``light_*`` CNNs): a
stride-2 stem conv, 1x1 pointwise and 3x3 depthwise convs, SE-block scaling,
attention's batched MatMul and Softmax over (1, 4, 16, 16), LayerNorm over a
hidden size of 64, an embedding Gather, etc. Every op is swept over:

* ``float32`` — expected outputs from the case's oracle (ONNX Runtime).
* ``float16`` — inputs and weights rounded to float16; the expected output is
  the float32 computation on those same values, rounded to float16 (the
  correctly-rounded answer a delegate's fp16 kernel should approach within
  the 5-ULP profile).
* ``int8`` (ops quantized models use) — a QDQ graph as
  ``onnxruntime.quantization`` writes it: activations through
  QuantizeLinear/DequantizeLinear (int8, scale 1/127 for inputs in [-1, 1]),
  weights stored as per-tensor symmetric int8, biases as int32 with scale
  ``s_x * s_w``, the output quantized to int8 with a scale covering its
  range. Expected outputs come from the oracle running the QDQ graph
  literally; the int8 profile allows +-1 (one rounding step).

Values are drawn from ``numpy.random.default_rng(crc32(case id))``, so every
case is reproducible on its own.
"""

from __future__ import annotations

import functools
import zlib
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from unified.conformance.cases import Case, CaseData, CaseSource, oracle_outputs

__all__ = ["SOURCE", "SWEEPS", "Sweep", "sweep_cases", "build_sweep"]

SOURCE = "ops"
IR_VERSION = 10
DEFAULT_OPSET = 18  # what torch.onnx.export(dynamo=True) writes


@dataclass(frozen=True)
class In:
    """One input of the op.

    kind: ``x`` graph input ~U(-1, 1); ``wide`` graph input ~U(-8, 8);
    ``pos`` graph input ~U(0.1, 2); ``w`` weight initializer, He normal
    (std sqrt(2 / fan_in), He et al. 2015); ``b`` initializer ~N(0, 0.05);
    ``scale`` initializer ~U(0.5, 1.5); ``table`` initializer ~N(0, 1);
    ``const`` initializer with ``value`` (keeps its dtype unless ``float``);
    ``idx`` int64 graph input in [0, ``value``); ``mask`` bool graph input;
    ``none`` an omitted optional input.
    """

    kind: str
    shape: tuple[int, ...] = ()
    value: Any = None
    float: bool = False  # a ``const`` that follows the sweep's float dtype


@dataclass(frozen=True)
class Sweep:
    op: str
    variant: str
    inputs: tuple[In, ...]
    attrs: dict = field(default_factory=dict)
    opset: int = DEFAULT_OPSET
    outputs: int = 1
    dtypes: tuple[str, ...] = ("float32", "float16")
    qdq: bool = False

    @property
    def name(self) -> str:
        return f"{self.op}/{self.variant}" if self.variant else self.op


def _x(*shape):
    return In("x", shape)


def _w(*shape):
    return In("w", shape)


def _b(*shape):
    return In("b", shape)


def _i64(*values):
    return In("const", (len(values),), np.array(values, dtype=np.int64))


SWEEPS: tuple[Sweep, ...] = (
    Sweep("Conv", "stem_k3s2_3to16", (_x(1, 3, 96, 96), _w(16, 3, 3, 3), _b(16)),
          {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}, qdq=True),
    Sweep("Conv", "pointwise_32to64", (_x(1, 32, 24, 24), _w(64, 32, 1, 1), _b(64)), {"kernel_shape": [1, 1]}, qdq=True),
    Sweep("Conv", "depthwise_k3_64", (_x(1, 64, 24, 24), _w(64, 1, 3, 3), _b(64)),
          {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1], "group": 64}, qdq=True),
    Sweep("Conv", "k3_32to32_nobias", (_x(1, 32, 14, 14), _w(32, 32, 3, 3)), {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]}),
    Sweep("Conv", "k7s2_3to16", (_x(1, 3, 64, 64), _w(16, 3, 7, 7), _b(16)),
          {"kernel_shape": [7, 7], "strides": [2, 2], "pads": [3, 3, 3, 3]}),
    Sweep("ConvTranspose", "k2s2_16to8", (_x(1, 16, 8, 8), _w(16, 8, 2, 2)), {"kernel_shape": [2, 2], "strides": [2, 2]}),
    Sweep("Gemm", "fc_512to100", (_x(1, 512), _w(100, 512), _b(100)), {"transB": 1}, qdq=True),
    Sweep("MatMul", "proj_16x64x64", (_x(1, 16, 64), _w(64, 64)), qdq=True),
    Sweep("MatMul", "attention_qk", (_x(1, 4, 16, 16), _x(1, 4, 16, 16))),
    Sweep("Add", "residual", (_x(1, 32, 14, 14), _x(1, 32, 14, 14)), qdq=True),
    Sweep("Add", "bias_broadcast", (_x(1, 16, 64), _b(64))),
    Sweep("Sub", "", (_x(1, 16, 64), _x(1, 16, 64))),
    Sweep("Mul", "se_scale", (_x(1, 32, 14, 14), _x(1, 32, 1, 1)), qdq=True),
    Sweep("Div", "", (_x(1, 16, 64), In("pos", (1, 16, 1)))),
    Sweep("Pow", "square", (_x(1, 16, 64), In("const", (), np.array(2.0, np.float32), float=True))),
    Sweep("Relu", "", (_x(1, 32, 14, 14),), qdq=True),
    Sweep("Sigmoid", "", (_x(1, 32, 14, 14),)),
    Sweep("Tanh", "", (_x(1, 32, 14, 14),)),
    Sweep("HardSwish", "", (In("wide", (1, 32, 14, 14)),)),
    Sweep("HardSigmoid", "", (In("wide", (1, 32, 14, 14)),), {"alpha": 1.0 / 6, "beta": 0.5}),
    Sweep("Clip", "relu6", (In("wide", (1, 32, 14, 14)), In("const", (), np.array(0.0, np.float32), float=True),
                            In("const", (), np.array(6.0, np.float32), float=True))),
    Sweep("Erf", "", (In("wide", (1, 16, 64)),)),
    Sweep("Gelu", "", (In("wide", (1, 16, 64)),), opset=20),
    Sweep("Exp", "", (_x(1, 16, 64),)),
    Sweep("Sqrt", "", (In("pos", (1, 16, 64)),)),
    Sweep("Softmax", "last_axis", (In("wide", (1, 4, 16, 16)),), {"axis": -1}),
    Sweep("LayerNormalization", "hidden64", (_x(1, 16, 64), In("scale", (64,)), _b(64)), {"axis": -1, "epsilon": 1e-5}),
    Sweep("BatchNormalization", "c32", (_x(1, 32, 24, 24), In("scale", (32,)), _b(32), _b(32), In("scale", (32,))),
          {"epsilon": 1e-5}),
    Sweep("MaxPool", "k3s2", (_x(1, 32, 28, 28),), {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]},
          qdq=True),
    Sweep("AveragePool", "k2s2", (_x(1, 32, 28, 28),), {"kernel_shape": [2, 2], "strides": [2, 2]}, qdq=True),
    Sweep("GlobalAveragePool", "", (_x(1, 64, 7, 7),), qdq=True),
    Sweep("ReduceMean", "last_axis", (_x(1, 16, 64), _i64(-1)), {"keepdims": 1}),
    Sweep("Concat", "channels", (_x(1, 16, 14, 14), _x(1, 32, 14, 14)), {"axis": 1}, qdq=True),
    Sweep("Reshape", "split_heads", (_x(1, 16, 64), _i64(1, 16, 4, 16))),
    Sweep("Transpose", "heads", (_x(1, 16, 4, 16),), {"perm": [0, 2, 1, 3]}),
    Sweep("Flatten", "", (_x(1, 64, 1, 1),), {"axis": 1}),
    Sweep("Split", "halves", (_x(1, 64, 8, 8), _i64(32, 32)), {"axis": 1}, outputs=2),
    Sweep("Slice", "channels", (_x(1, 64, 8, 8), _i64(0), _i64(32), _i64(1))),
    Sweep("Gather", "embedding", (In("table", (1000, 64)), In("idx", (1, 16), 1000)), {"axis": 0}),
    Sweep("Resize", "nearest_x2", (_x(1, 16, 8, 8), In("none"), In("const", (4,), np.array([1, 1, 2, 2], np.float32))),
          {"mode": "nearest"}),
    Sweep("Pad", "constant_1", (_x(1, 16, 8, 8), _i64(0, 0, 1, 1, 0, 0, 1, 1))),
    Sweep("Where", "attention_mask", (In("mask", (1, 1, 16, 16)), _x(1, 4, 16, 16), _x(1, 4, 16, 16))),
)
"""Every op sweep; each yields one case per dtype (plus int8 when ``qdq``)."""

_BY_NAME = {s.name: s for s in SWEEPS}
_NP = {"float32": np.float32, "float16": np.float16}
_ONNX = {"float32": TensorProto.FLOAT, "float16": TensorProto.FLOAT16}


def _seed(case_id: str) -> int:
    return zlib.crc32(case_id.encode())


def _draw(inp: In, rng: np.random.Generator) -> np.ndarray | None:
    k, shape = inp.kind, inp.shape
    if k == "x":
        return rng.uniform(-1, 1, shape)
    if k == "wide":
        return rng.uniform(-8, 8, shape)
    if k == "pos":
        return rng.uniform(0.1, 2.0, shape)
    if k == "w":
        fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else shape[0]
        return rng.normal(0.0, np.sqrt(2.0 / max(fan_in, 1)), shape)
    if k == "b":
        return rng.normal(0.0, 0.05, shape)
    if k == "scale":
        return rng.uniform(0.5, 1.5, shape)
    if k == "table":
        return rng.normal(0.0, 1.0, shape)
    if k == "idx":
        return rng.integers(0, inp.value, shape).astype(np.int64)
    if k == "mask":
        return rng.integers(0, 2, shape).astype(bool)
    if k == "const":
        return np.asarray(inp.value)
    return None


def _is_float_input(inp: In) -> bool:
    return inp.kind in ("x", "wide", "pos", "w", "b", "scale", "table") or (inp.kind == "const" and inp.float)


def _graph(sweep: Sweep, dtype: str, values: list[np.ndarray | None], feeds_out: dict) -> onnx.ModelProto:
    """A one-node model computing ``sweep`` in ``dtype`` (float32/float16)."""
    elem = _ONNX[dtype]
    names, graph_inputs, inits = [], [], []
    for i, (inp, v) in enumerate(zip(sweep.inputs, values)):
        if inp.kind == "none":
            names.append("")
            continue
        name = f"in{i}"
        names.append(name)
        if _is_float_input(inp):
            v = v.astype(_NP[dtype])
        if inp.kind in ("x", "wide", "pos", "idx", "mask"):
            graph_inputs.append(helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(v.dtype), v.shape))
            feeds_out[name] = np.ascontiguousarray(v)
        else:
            inits.append(numpy_helper.from_array(np.asarray(v), name))
    outs = [f"out{k}" for k in range(sweep.outputs)]
    node = helper.make_node(sweep.op, names, outs, name=sweep.op.lower(), **sweep.attrs)
    graph = helper.make_graph([node], sweep.name.replace("/", "_"), graph_inputs,
                              [helper.make_tensor_value_info(o, elem, None) for o in outs], initializer=inits)
    return _finish(graph, sweep.opset)


def _finish(graph: onnx.GraphProto, opset: int) -> onnx.ModelProto:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=IR_VERSION,
                              producer_name="unified.conformance")
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    onnx.checker.check_model(inferred)
    return inferred


def build_sweep(sweep_name: str, dtype: str, case_id: str) -> CaseData:
    """Build one sweep case (the loader of every ``ops`` case).

    Args:
        sweep_name: ``Sweep.name``, e.g. ``"Conv/depthwise_k3_64"``.
        dtype: ``"float32"``, ``"float16"`` or ``"int8"``.
        case_id: seeds the values.

    Returns:
        The case data; ``expected`` is None for float32 and int8 (the
        oracle computes it), and the rounded float32 result for float16.

    Raises:
        KeyError: unknown sweep name.
    """
    sweep = _BY_NAME[sweep_name]
    rng = np.random.default_rng(_seed(case_id))
    values = [_draw(i, rng) for i in sweep.inputs]
    if dtype == "int8":
        return _qdq(sweep, values)
    feeds: dict[str, np.ndarray] = {}
    model = _graph(sweep, dtype, values, feeds)
    if dtype == "float32":
        return CaseData(model, [(feeds, None)])
    # float16: the float32 twin on the float16-rounded values, rounded back
    rounded = [v.astype(np.float16).astype(np.float32) if v is not None and _is_float_input(i) else v
               for i, v in zip(sweep.inputs, values)]
    feeds32: dict[str, np.ndarray] = {}
    twin = _graph(sweep, "float32", rounded, feeds32)
    expected = [np.asarray(y).astype(np.float16) for y in oracle_outputs(twin, feeds32)]
    return CaseData(model, [(feeds, expected)])


def _qdq(sweep: Sweep, values: list[np.ndarray | None]) -> CaseData:
    """The QDQ int8 form of ``sweep`` (see the module docstring)."""
    feeds32: dict[str, np.ndarray] = {}
    fp32 = _graph(sweep, "float32", values, feeds32)
    y = oracle_outputs(fp32, feeds32)
    nodes, graph_inputs, inits, names = [], [], [], []
    s_x = np.float32(1.0 / 127)
    inits += [numpy_helper.from_array(s_x, "s_x"), numpy_helper.from_array(np.int8(0), "z8")]
    if any(i.kind == "b" for i in sweep.inputs):
        inits.append(numpy_helper.from_array(np.int32(0), "z32"))
    feeds: dict[str, np.ndarray] = {}
    w_scales = []
    for i, (inp, v) in enumerate(zip(sweep.inputs, values)):
        name = f"in{i}"
        if inp.kind == "x":
            graph_inputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, v.shape))
            feeds[name] = v.astype(np.float32)
            nodes += [helper.make_node("QuantizeLinear", [name, "s_x", "z8"], [f"{name}_q"]),
                      helper.make_node("DequantizeLinear", [f"{name}_q", "s_x", "z8"], [f"{name}_dq"])]
        elif inp.kind == "w":
            s_w = np.float32(max(float(np.max(np.abs(v))), 1e-8) / 127)
            w_scales.append(s_w)
            q = np.clip(np.round(v / s_w), -127, 127).astype(np.int8)
            inits += [numpy_helper.from_array(q, f"{name}_q"), numpy_helper.from_array(s_w, f"s_{name}")]
            nodes.append(helper.make_node("DequantizeLinear", [f"{name}_q", f"s_{name}", "z8"], [f"{name}_dq"]))
        elif inp.kind == "b":
            s_b = np.float32(s_x * (w_scales[-1] if w_scales else 1.0))
            q = np.round(v / s_b).astype(np.int32)
            inits += [numpy_helper.from_array(q, f"{name}_q"), numpy_helper.from_array(s_b, f"s_{name}")]
            nodes.append(helper.make_node("DequantizeLinear", [f"{name}_q", f"s_{name}", "z32"], [f"{name}_dq"]))
        else:
            raise ValueError(f"sweep {sweep.name}: input kind {inp.kind!r} has no QDQ form")
        names.append(f"{name}_dq")
    outs = []
    for k, yk in enumerate(y):
        s_y = np.float32(max(float(np.max(np.abs(yk))), 1e-6) / 127)
        inits.append(numpy_helper.from_array(s_y, f"s_y{k}"))
        outs.append(f"out{k}")
    op_outs = [f"y{k}" for k in range(sweep.outputs)]
    nodes.append(helper.make_node(sweep.op, names, op_outs, name=sweep.op.lower(), **sweep.attrs))
    nodes += [helper.make_node("QuantizeLinear", [f"y{k}", f"s_y{k}", "z8"], [f"out{k}"]) for k in range(sweep.outputs)]
    graph = helper.make_graph(nodes, f"{sweep.name.replace('/', '_')}_qdq", graph_inputs,
                              [helper.make_tensor_value_info(o, TensorProto.INT8, None) for o in outs],
                              initializer=inits)
    return CaseData(_finish(graph, sweep.opset), [(feeds, None)])


def _case(sweep: Sweep, dtype: str) -> Case:
    case_id = f"{SOURCE}/{sweep.name}/{dtype}"
    if dtype == "int8":
        dtypes = ("float32", "int8")
    else:
        dtypes = tuple(sorted({dtype} | {"int64" for i in sweep.inputs if i.kind == "idx"}
                              | {"bool" for i in sweep.inputs if i.kind == "mask"}))
    return Case(
        id=case_id,
        source=SOURCE,
        loader=functools.partial(build_sweep, sweep.name, dtype, case_id),
        op=sweep.op,
        opset=sweep.opset,
        dtype=dtype,
        dtypes=dtypes,
        group=sweep.op,
        tags=("qdq",) if dtype == "int8" else (),
    )


def sweep_cases() -> list[Case]:
    """Every sweep x dtype as a :class:`Case`."""
    out = []
    for s in SWEEPS:
        out.extend(_case(s, d) for d in s.dtypes)
        if s.qdq:
            out.append(_case(s, "int8"))
    return out


def fast_subset(cases: Sequence[Case]) -> list[Case]:
    """Conv, MatMul, Add and Softmax sweeps (every dtype)."""
    return [c for c in cases if c.op in ("Conv", "MatMul", "Add", "Softmax")]


def source() -> CaseSource:
    return CaseSource(
        SOURCE,
        "single-op sweeps at the shapes real models use: float32, float16 and int8 (QDQ)",
        sweep_cases,
        fast_subset,
    )
