"""A zero pad of a dequantized int8 tensor that no quantized convolution absorbs.

The pattern: ``DequantizeLinear -> AveragePool`` with asymmetric pads (Inception
v1's last pool: 7x7 window, pads ``[0, 0, 1, 1]``, on a 6x6 input), which the
lowering traces as ``dequantize_per_tensor -> pad(0) -> avg_pool2d`` (and the
same pad before a Conv with float weights). Before
``convert.requantize_padded_dequantize``, ExecuTorch 1.5's XNNPACK passes gave
that pad an int8 output with a float input and the program failed to load
("Failed to create StaticConstantPad node ... xnn_status_invalid_parameter";
"Init failed for backend XnnpackBackend: 0x1"): a false claim. Reference:
ONNX Runtime running the same QDQ graph as the spec writes it.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from unified import InferenceSession, SessionOptions

from .test_quantized import lsb_errors, ort_qdq

torch = pytest.importorskip("torch")

OUT_SCALE = 0.04


def qdq_model(shape, op="AveragePool", weight=None, **attrs) -> onnx.ModelProto:
    """``x -> Q -> DQ -> op(**attrs) -> Q -> DQ -> y``, int8, per-tensor, opset 19;
    ``weight``: a float initializer read as the op's second input (a Conv's)."""
    consts = {"s_in": np.float32(0.05), "z_in": np.int8(-10), "s_out": np.float32(OUT_SCALE), "z_out": np.int8(-5)}
    if weight is not None:
        consts["w"] = weight
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "s_in", "z_in"], ["xq"]),
        helper.make_node("DequantizeLinear", ["xq", "s_in", "z_in"], ["xd"]),
        helper.make_node(op, ["xd"] + (["w"] if weight is not None else []), ["pooled"], **attrs),
        helper.make_node("QuantizeLinear", ["pooled", "s_out", "z_out"], ["yq"]),
        helper.make_node("DequantizeLinear", ["yq", "s_out", "z_out"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes, "qdq_pad", [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in consts.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)], ir_version=9)
    return onnx.shape_inference.infer_shapes(model, strict_mode=True)


_FLOAT_W = np.random.default_rng(7).normal(0.0, 0.1, (4, 4, 3, 3)).astype(np.float32)


@pytest.mark.parametrize(
    "shape, attrs",
    [
        ((1, 8, 6, 6), dict(kernel_shape=[7, 7], pads=[0, 0, 1, 1])),  # Inception v1's pool5, scaled down
        ((1, 4, 9, 9), dict(kernel_shape=[3, 3], pads=[0, 0, 1, 1], strides=[2, 2])),
        ((1, 4, 6, 6), dict(kernel_shape=[3, 3], pads=[1, 0, 2, 1], count_include_pad=1)),
        ((1, 4, 6, 6), dict(op="Conv", weight=_FLOAT_W, kernel_shape=[3, 3], pads=[0, 0, 1, 1])),
    ],
    ids=["inception_pool5", "stride2", "count_include_pad", "float_weight_conv"],
)
def test_asymmetric_zero_pad_of_int8_runs_within_one_lsb(shape, attrs, tmp_path):
    model = qdq_model(shape, **attrs)
    sess = InferenceSession(model, delegates=["executorch"],
                            options=SessionOptions(strict=True, cache_dir=tmp_path / "cache"))
    assert [p.delegate for p in sess.plan.partitions] == ["executorch"]
    assert len(sess.plan.partitions[0].nodes) == len(model.graph.node)  # claims the whole graph ...
    for seed in (0, 1):  # ... and runs it: it loads, and matches ONNX Runtime
        x = {"x": np.random.default_rng(seed).normal(0.0, 2.0, shape).astype(np.float32)}
        got, ref = sess.run(None, x)[0], ort_qdq(model, x)[0]
        assert got.shape == ref.shape
        err = lsb_errors(got, ref, OUT_SCALE)
        assert np.mean(err <= 1 + 1e-3) >= 0.99 and err.max() <= 2 + 1e-3, f"seed {seed}: max {err.max():.2f} LSB"


# --- the rewrite itself, on exported programs ------------------------------------------


class _Padded(torch.nn.Module):
    """``dequantize_per_tensor -> F.pad(value) -> then``: the shapes the lowerings trace."""

    def __init__(self, then: str, value: float = 0.0):
        super().__init__()
        self.then, self.value = then, value
        self.register_buffer("weight", torch.ones(2, 2, 3, 3))
        self.register_buffer("weight_q", torch.ones(2, 2, 3, 3, dtype=torch.int8))

    def forward(self, q):
        import torch.ao.quantization.fx._decomposed  # noqa: F401  (registers quantized_decomposed)

        x = torch.ops.quantized_decomposed.dequantize_per_tensor.default(q, 0.1, 3, -128, 127, torch.int8)
        x = torch.nn.functional.pad(x, (0, 1, 0, 1), value=self.value)
        if self.then == "conv":  # int8 weight: XNNPACK's quantized conv absorbs the pad
            w = torch.ops.quantized_decomposed.dequantize_per_tensor.default(self.weight_q, 0.5, 0, -128, 127, torch.int8)
            return torch.nn.functional.conv2d(x, w)
        if self.then == "float_conv":  # float weight: a float conv, the pad is not absorbed
            return torch.nn.functional.conv2d(x, self.weight)
        pooled = torch.nn.functional.avg_pool2d(x, 3, 1) if self.then == "avg" else torch.nn.functional.max_pool2d(x, 3, 1)
        return torch.ops.quantized_decomposed.quantize_per_tensor.default(pooled, 0.2, 0, -128, 127, torch.int8)


@pytest.mark.parametrize(
    "then, value, rewritten",
    [("avg", 0.0, 1), ("conv", 0.0, 0), ("float_conv", 0.0, 1), ("max", -float("inf"), 0)],
)
def test_requantize_padded_dequantize_picks_only_unabsorbed_zero_pads(then, value, rewritten):
    from unified.delegates.executorch.convert import requantize_padded_dequantize

    module = _Padded(then, value)
    q = torch.randint(-128, 128, (1, 2, 6, 6), dtype=torch.int8)
    exported = torch.export.export(module, (q,), strict=False)
    before = exported.module()(q)
    assert requantize_padded_dequantize(exported) == rewritten
    targets = [str(n.target) for n in exported.graph.nodes if n.op == "call_function"]
    pad = next(i for i, t in enumerate(targets) if t.startswith("aten.pad"))
    followed = targets[pad + 1:pad + 3] == ["quantized_decomposed.quantize_per_tensor.default",
                                            "quantized_decomposed.dequantize_per_tensor.default"]
    assert followed == bool(rewritten)
    assert torch.equal(exported.module()(q), before)  # the requantization changes no value
