"""Source ``quantized-models``: whole models quantized to int8 QDQ.

Each ``light_*`` architecture shipped with onnx, its weights re-drawn with
seed 0 (``zoo.redraw_weights``, as the ``models`` source does), is quantized
with :func:`unified.quantize.quantize_static` (int8 QDQ, per-channel
symmetric weights, asymmetric int8 activations) calibrated on 32 seeded
random inputs (seeds 1..32); the case input is ``zoo.random_inputs(seed=0)``.
Expected outputs: ONNX Runtime running the same QDQ model, graph
optimizations off, so its QDQ groups run as the spec writes them
(``DequantizeLinear`` -> float op -> ``QuantizeLinear``).

Tolerance (``compare.py``): an output produced by a ``DequantizeLinear`` is
compared within one step of that node's scale (one LSB of the quantized
value before it); int8/uint8 outputs within +-1; the case passes when at
least 99 % of the elements are within it (:data:`MIN_PASS`), since one
rounding flip early in a deep quantized net moves a few outputs by more
than one step. Outputs of a float op after the last ``DequantizeLinear``
fall back to the float whole-model tolerance with the same 99 % rule.

Quantizing takes seconds to minutes (DenseNet-121, VGG-19), so each
quantized model is cached as ``<cache_dir>/models/quantized/<name>-<key>.onnx``,
``key`` = SHA-256 of the float model's bytes, the calibration settings, the
``unified.quantize`` sources and the onnxruntime version.
"""

from __future__ import annotations

import functools
import hashlib
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import onnx
from onnx import numpy_helper

from unified.conformance.cases import Case, CaseData, CaseSource
from unified.conformance.compare import Tolerance

__all__ = ["SOURCE", "MIN_PASS", "CALIBRATION_SAMPLES", "quantized_model_cases", "build_quantized_light",
           "output_tolerance", "cached_quantized"]

SOURCE = "quantized-models"
MIN_PASS = 0.99
CALIBRATION_SAMPLES = 32
_FLOAT_FALLBACK = Tolerance(atol=1e-4, rtol=1e-3, min_pass=MIN_PASS)
_LIMITS = {"vgg19": 900.0, "zfnet512": 600.0, "bvlc_alexnet": 600.0, "densenet121": 600.0,
           "resnet50": 600.0, "inception_v2": 600.0}


def _cache_key(model_bytes: bytes) -> str:
    import onnxruntime

    import unified.quantize

    h = hashlib.sha256(model_bytes)
    h.update(repr(("samples", CALIBRATION_SAMPLES, "seeds from 1", onnxruntime.__version__)).encode())
    for src in sorted(Path(unified.quantize.__file__).parent.glob("*.py")):
        h.update(src.read_bytes())
    return h.hexdigest()[:16]


def cached_quantized(name: str, model: onnx.ModelProto, cache_dir: str | os.PathLike | None = None) -> onnx.ModelProto:
    """``model`` quantized with :func:`unified.quantize.quantize_static`, from the cache when there.

    Args:
        name: file name stem (the light model's name).
        model: the float model.
        cache_dir: default ``unified.cache.default_cache_dir() / "models" / "quantized"``.

    Returns:
        The int8 QDQ model.
    """
    from unified.cache import default_cache_dir
    from unified.quantize import quantize_static, random_calibration

    root = Path(cache_dir) if cache_dir else default_cache_dir() / "models" / "quantized"
    path = root / f"{name}-{_cache_key(model.SerializeToString())}.onnx"
    if path.is_file():
        try:
            return onnx.load(str(path))
        except Exception:  # a corrupt cache entry is rebuilt
            path.unlink(missing_ok=True)
    calibration = random_calibration(model, CALIBRATION_SAMPLES, seed=1)
    q = quantize_static(model, calibration=calibration)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.part")  # written whole, then moved into place
    onnx.save(q, str(partial))
    os.replace(partial, path)
    return q


def output_tolerance(model: onnx.ModelProto) -> Tolerance:
    """The comparison rule of a QDQ model's outputs (module docstring).

    A float output produced by a per-tensor ``DequantizeLinear`` gets
    ``step`` = its scale; with several such outputs, the smallest scale (the
    strictest). int8/uint8 outputs get +-1 from the profile.
    """
    producer = {o: n for n in model.graph.node for o in n.output}
    inits = {t.name: t for t in model.graph.initializer}
    steps = []
    for out in model.graph.output:
        if out.type.tensor_type.elem_type in (onnx.TensorProto.INT8, onnx.TensorProto.UINT8):
            continue
        node = producer.get(out.name)
        scale = inits.get(node.input[1]) if node is not None and node.op_type == "DequantizeLinear" else None
        if scale is None or int(np.prod(scale.dims)) != 1:
            return _FLOAT_FALLBACK
        steps.append(float(numpy_helper.to_array(scale).reshape(())))
    return Tolerance(step=min(steps), min_pass=MIN_PASS) if steps else Tolerance(step=1.0, min_pass=MIN_PASS)


def build_quantized_light(name: str, seed: int = 0) -> CaseData:
    """``light_<name>`` re-drawn (``seed``), quantized (cached), with seeded inputs and its tolerance."""
    from unified.conformance import zoo

    model = zoo.redraw_weights(onnx.load(zoo.light_model_path(name)), seed=seed)
    q = cached_quantized(name, model)
    return CaseData(q, [(zoo.random_inputs(model, seed=seed), None)], tolerance=output_tolerance(q))


def quantized_model_cases() -> list[Case]:
    """One case per light model."""
    from unified.conformance import zoo

    return [
        Case(
            id=f"{SOURCE}/light/{name}", source=SOURCE, loader=functools.partial(build_quantized_light, name, 0),
            dtype="float32", dtypes=("float32",), group=f"model:{name}-int8",
            tolerance=_FLOAT_FALLBACK, timeout=_LIMITS.get(name, 300.0),
            tags=("light", "qdq", "quantized"),
        )
        for name in zoo.LIGHT_MODELS
    ]


def fast_subset(cases: Sequence[Case]) -> list[Case]:
    """SqueezeNet: 26 quantized convs, seconds to quantize."""
    return [c for c in cases if c.id == f"{SOURCE}/light/squeezenet"]


def source() -> CaseSource:
    return CaseSource(
        SOURCE,
        "light_* models quantized to int8 QDQ by unified.quantize (32 random calibration inputs), vs ONNX Runtime",
        quantized_model_cases,
        fast_subset,
    )
