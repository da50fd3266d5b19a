"""Real architectures through InferenceSession, against ONNX Runtime called directly."""

from __future__ import annotations

import warnings

import numpy as np
import onnx
import pytest

import unified
from unified import InferenceSession, SessionOptions
from unified.conformance import nets, zoo

from .toy_delegate import ToyDelegate, ToyPlugin

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("name", zoo.LIGHT_MODELS)
def test_light_model_with_redrawn_weights_matches_ort(name, light, ort_reference, options):
    model = light(name, seed=0)
    feeds = zoo.random_inputs(model, seed=1)
    sess = InferenceSession(model, ["onnxruntime"], options)
    assert sess.plan.node_counts() == {"onnxruntime": len(model.graph.node)}
    got = sess.run(None, feeds)
    want = ort_reference(model, feeds)
    assert got[0].std() > 1e-6, "re-drawn weights should give a non-uniform output"
    np.testing.assert_allclose(got[0], want[0], rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("name", zoo.LIGHT_MODELS)
def test_light_model_shipped_reference_output(name, options):
    model = onnx.load(zoo.light_model_path(name))
    sess = InferenceSession(model, ["onnxruntime"], options)
    got = sess.run(None, zoo.random_inputs(model, seed=0))[0]
    np.testing.assert_allclose(got, zoo.light_reference_output(name), rtol=1e-3, atol=1e-7)


@pytest.mark.parametrize("name", ["resnet50", "inception_v1", "squeezenet", "shufflenet"])
def test_light_model_split_across_two_delegates_matches_ort(name, light, ort_reference, tmp_path):
    """A NumPy toy delegate takes every Relu/Add/Mul, so the graph is cut into
    many partitions whose boundaries the session must wire correctly."""
    model = light(name, seed=2)
    feeds = zoo.random_inputs(model, seed=3)
    toy = ToyDelegate()
    options = SessionOptions(plugins=[ToyPlugin(toy)], cache_dir=tmp_path)
    sess = InferenceSession(model, ["toy", "onnxruntime"], options)
    counts = sess.plan.node_counts()
    assert counts.get("toy", 0) > 0 and counts.get("onnxruntime", 0) > 0
    assert len(sess.plan.partitions) > 2
    got = sess.run(None, feeds)
    want = ort_reference(model, feeds)
    np.testing.assert_allclose(got[0], want[0], rtol=1e-3, atol=1e-6)


def test_minilm_export_matches_ort_and_sentence_transformers(ort_reference, options):
    sentences = ["A man is playing a guitar.", "The cat sleeps.", "Rates rose again this quarter."]
    st = nets.minilm_sentence_transformer()
    model = nets.minilm()
    feeds = nets.minilm_tokenize(sentences, model=st)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", unified.FallbackWarning)
        sess = InferenceSession(model, ["onnxruntime"], options)
    assert [i.name for i in sess.get_inputs()] == ["input_ids", "attention_mask", "token_type_ids"]
    assert sess.get_outputs()[0].shape[1] == 384
    (got,) = sess.run(None, feeds)
    (want,) = ort_reference(model, feeds)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    torch_out = st.encode(sentences, convert_to_numpy=True, normalize_embeddings=True)
    assert np.abs(got - torch_out).max() <= 1e-4
