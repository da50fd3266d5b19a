"""Shared fixtures: offline models and ONNX Runtime as the independent reference."""

from __future__ import annotations

import functools

import numpy as np
import onnx
import pytest

from unified.conformance import zoo


@functools.lru_cache(maxsize=None)
def _light(name: str, seed: int) -> bytes:
    model = zoo.redraw_weights(onnx.load(zoo.light_model_path(name)), seed=seed)
    return model.SerializeToString()


def light_model(name: str, seed: int = 0) -> onnx.ModelProto:
    """``light_<name>.onnx`` with weights re-drawn (seeded, He-scaled); a fresh copy."""
    return onnx.load_from_string(_light(name, seed))


def ort_reference(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    """Outputs of ONNX Runtime called directly (the independent reference)."""
    import onnxruntime as ort

    m = onnx.ModelProto()
    m.CopyFrom(model)
    m.ir_version = min(m.ir_version, 10)
    sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


@pytest.fixture
def options(tmp_path):
    """SessionOptions with a private compile cache."""
    from unified import SessionOptions

    return SessionOptions(cache_dir=tmp_path / "cache")
