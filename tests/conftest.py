"""Shared fixtures: offline models and ONNX Runtime as the independent reference.

Fixtures:
    light: ``light(name, seed=0) -> onnx.ModelProto`` — ``light_<name>.onnx``
        from the onnx wheel with weights re-drawn (seeded, He-scaled).
    ort_reference: ``ort_reference(model, feeds) -> list[np.ndarray]`` —
        ONNX Runtime called directly (CPU EP), no unified code involved.
    options: ``SessionOptions`` with a private compile cache under tmp_path.
"""

from __future__ import annotations

import functools

import numpy as np
import onnx
import pytest

from unified.conformance import zoo


@functools.lru_cache(maxsize=None)
def _light_bytes(name: str, seed: int) -> bytes:
    return zoo.redraw_weights(onnx.load(zoo.light_model_path(name)), seed=seed).SerializeToString()


def _ort_reference(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    import onnxruntime as ort

    m = onnx.ModelProto()
    m.CopyFrom(model)
    m.ir_version = min(m.ir_version, 10)  # ORT 1.31 reads IR <= 13; onnx 1.23 writes 14
    sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


@pytest.fixture(scope="session")
def light():
    return lambda name, seed=0: onnx.load_from_string(_light_bytes(name, seed))


@pytest.fixture(scope="session")
def ort_reference():
    return _ort_reference


@pytest.fixture
def options(tmp_path):
    from unified import SessionOptions

    return SessionOptions(cache_dir=tmp_path / "cache")
