"""The dynamic-shape MiniLM export runs on tflite once its dims are pinned."""

from __future__ import annotations

import numpy as np
import pytest

from unified import InferenceSession, SessionOptions
from unified.conformance import nets

pytestmark = pytest.mark.slow


def test_dynamic_minilm_with_free_dimensions_runs_strictly_on_tflite(ort_reference, tmp_path):
    model = nets.minilm()  # symbolic batch and seq
    st = nets.minilm_sentence_transformer()
    feeds = nets.minilm_tokenize(["the cat sat on the mat", "rates rose again", "hello"], seq=16, model=st)
    options = SessionOptions(strict=True, free_dimensions={"batch": 3, "seq": 16}, cache_dir=tmp_path)
    sess = InferenceSession(model, ["tflite"], options)
    assert sess.plan.node_counts() == {"tflite": sum(len(p.nodes) for p in sess.plan.partitions)}
    (got,) = sess.run(None, feeds)
    (want,) = ort_reference(model, feeds)
    np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-5)
