"""The executorch delegate's contract: registration, cheap import, declines
with reasons, options, compile cache and the XNNPACK/portable op counts."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from onnx import TensorProto, helper

from unified import InferenceSession
from unified.errors import DelegateError, UnsupportedError
from unified.graph import Graph
from unified.plugins import registry

from ...onnx_models import rand


def _delegate():
    return registry().get("executorch")


def test_registered_through_entry_point():
    d = _delegate()
    assert d.name == "executorch" and d.default_priority == 30
    assert d.backends() == ["cpu"]
    av = d.availability()
    assert av.ok and av.executes and av.version == "1.5.1"


def test_import_does_not_import_torch():
    code = "import sys, unified.delegates.executorch as e; e.ExecuTorchDelegate().supports; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize(
    "node, inputs, consts, opset, reason",
    [
        (helper.make_node("LSTM", ["x", "w", "r"], ["y"], hidden_size=2), {"x": (np.float32, (3, 1, 4))},
         {"w": np.zeros((1, 8, 4), np.float32), "r": np.zeros((1, 8, 2), np.float32)}, 17,
         "executorch has no kernel for op LSTM"),
        (helper.make_node("Resize", ["x", "", "s"], ["y"], mode="cubic"), {"x": (np.float32, (1, 1, 4, 4))},
         {"s": np.array([1, 1, 2, 2], np.float32)}, 13, "Resize mode=cubic not handled"),
        (helper.make_node("Pad", ["x", "p"], ["y"], mode="wrap"), {"x": (np.float32, (1, 1, 4, 4))},
         {"p": np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64)}, 19, "Pad mode='wrap' not handled"),
        (helper.make_node("Resize", ["x", "", "s"], ["y"], mode="nearest"), {"x": (np.float32, (1, 1, "h", 4))},
         {"s": np.array([1, 1, 1.5, 1.5], np.float32)}, 13, "Resize nearest with half_pixel needs integer upscale"),
        (helper.make_node("Cast", ["x"], ["y"], to=TensorProto.FLOAT16), {"x": (np.float32, (2,))}, {}, 17,
         "dtype tensor(float16)"),
        (helper.make_node("Softmax", ["x"], ["y"]), {"x": (np.float64, (2, 3))}, {}, 17,
         "Softmax input dtype double not supported (supported: float)"),
        (helper.make_node("LRN", ["x"], ["y"], size=4), {"x": (np.float32, (1, 4, 2, 2))}, {}, 17,
         "LRN with an even size not handled"),
        (helper.make_node("Slice", ["x", "s", "e", "a", "st"], ["y"]), {"x": (np.float32, (6,))},
         {"s": np.array([5]), "e": np.array([0]), "a": np.array([0]), "st": np.array([-1])}, 17,
         "Slice with negative or non-constant steps not handled"),
        (helper.make_node("MaxPool", ["x"], ["y", "idx"], kernel_shape=[2, 2]), {"x": (np.float32, (1, 1, 4, 4))},
         {}, 17, "MaxPool optional output(s) ['idx'] not produced"),
        (helper.make_node("Resize", ["x", "", "s"], ["y"], axes=[2, 3]), {"x": (np.float32, (1, 1, 4, 4))},
         {"s": np.array([2, 2], np.float32)}, 18, "Resize attribute(s) ['axes'] not handled"),
    ],
)
def test_declines_with_reason(make_model, node, inputs, consts, opset, reason):
    outputs = [o for o in node.output]
    graph = Graph(make_model([node], inputs, consts, outputs, opset))
    view = next(v for v in graph.node_views if v.op_type == node.op_type)
    answer = _delegate().supports(view)
    assert not answer.ok
    assert reason in answer.reason


def test_strict_session_lists_declined_ops(make_model, options):
    model = make_model([helper.make_node("Resize", ["x", "", "s"], ["y"], mode="cubic")],
                       {"x": (np.float32, (1, 1, 4, 4))}, {"s": np.array([1, 1, 2, 2], np.float32)}, opset=13)
    options.strict = True
    with pytest.raises(UnsupportedError, match="Resize mode=cubic not handled"):
        InferenceSession(model, delegates=["executorch"], options=options)


def test_unknown_option_is_an_error(make_model, options):
    model = make_model([helper.make_node("Relu", ["x"], ["y"])], {"x": (np.float32, (2, 3))})
    options.strict = True
    with pytest.raises(DelegateError, match=r"delegate 'executorch' has no option 'dims'; it takes none besides backend"):
        InferenceSession(model, delegates=[("executorch", {"dims": {"batch": 2}})], options=options)


def test_second_session_loads_the_pte_from_the_cache(make_model, options, ort_reference):
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("ReduceMax", ["r"], ["y"], axes=[1], keepdims=0)]  # ReduceMax: portable kernels
    model = make_model(nodes, {"x": (np.float32, (1, 3, 8, 8))}, {"w": rand((4, 3, 3, 3), 1)}, opset=17)
    first = InferenceSession(model, delegates=["executorch"], options=options)
    second = InferenceSession(model, delegates=["executorch"], options=options)
    assert [p.cache_hit for p in first.profile] == [False]
    assert [p.cache_hit for p in second.profile] == [True]
    details = first.plan.partitions[0].details
    assert details == second.plan.partitions[0].details
    assert details["xnnpack_ops"] >= 2 and details["portable_ops"] >= 1
    assert first.partitions[0].executable.serialize()[4:8] == b"ET12"  # an ExecuTorch program flatbuffer
    feeds = {"x": rand((1, 3, 8, 8), 2)}
    np.testing.assert_allclose(second.run(None, feeds)[0], ort_reference(model, feeds)[0], rtol=1e-3, atol=1e-4)
