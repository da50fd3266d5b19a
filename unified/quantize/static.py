"""Static int8 QDQ quantization through ONNX Runtime's quantization tool.

The scheme is the mobile default of the field, the one TFLite's int8
quantization specification fixes (https://ai.google.dev/edge/litert/models/quantization_spec)
and NNAPI runs: weights int8, *symmetric* (zero point 0), one scale per
output channel (``per_channel=True``, axis 0 of Conv weights); activations
int8, asymmetric (a scale and a zero point per tensor), ranges from min/max
calibration. The model is written in ONNX Runtime's QDQ format
(``QuantFormat.QDQ``): ``DequantizeLinear`` on inputs and weights, the float
op, ``QuantizeLinear`` on its output, so every runtime that does not fuse the
pattern still runs it as plain float ops.

Calibration data (:func:`load_calibration`) is a folder in one of two layouts:

* ``DIR/<k>.npz`` — one file per sample, holding one array per model input
  under the input's name (``numpy.savez(path, input=array)``);
* ``DIR/<input_name>/<k>.npy`` — one folder per model input, one ``.npy``
  per sample; the ``k``-th files of every folder form sample ``k``.

Files are taken in sorted name order. Without a folder, ``samples`` seeded
random inputs (floats ~ U(-1, 1)) are used, with a warning: random data is
not representative of real inputs, so the activation ranges (and the
accuracy) are not those of a calibrated model.

ONNX Runtime and ``onnxruntime.quantization`` are imported inside the
functions (``unified/`` imports only onnx, numpy and pluggy at module level).
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import Any, Mapping, NamedTuple, Sequence

import numpy as np
import onnx

from unified.errors import UnifiedError

__all__ = ["QuantizationError", "quantize_static", "load_calibration", "random_calibration", "MIN_QDQ_OPSET"]

log = logging.getLogger("unified.quantize")

MIN_QDQ_OPSET = 13
"""Per-channel ``QuantizeLinear``/``DequantizeLinear`` (the ``axis``
attribute) exist from opset 13; older models are converted first with
``onnx.version_converter``."""


class QuantizationError(UnifiedError, ValueError):
    """A model cannot be quantized as asked: bad calibration data, an
    unknown scheme, or the quantizer failed (the message says which)."""


def load_calibration(directory: str | os.PathLike, input_names: Sequence[str]) -> list[dict[str, np.ndarray]]:
    """Read calibration samples from ``directory`` (layouts in the module docstring).

    Args:
        directory: the folder.
        input_names: the model's input names (initializers excluded).

    Returns:
        One ``{input name: array}`` dict per sample, in sorted file order.

    Raises:
        QuantizationError: no such folder, no samples, a sample missing an
            input, or folders with different sample counts.
    """
    root = Path(directory)
    if not root.is_dir():
        raise QuantizationError(f"calibration folder '{root}' does not exist")
    npz = sorted(root.glob("*.npz"))
    if npz:
        samples = []
        for path in npz:
            with np.load(path) as data:
                missing = [n for n in input_names if n not in data.files]
                if missing:
                    raise QuantizationError(
                        f"calibration sample '{path.name}' lacks input(s) {missing}; it holds {data.files}")
                samples.append({n: np.asarray(data[n]) for n in input_names})
        return samples
    per_input = {}
    for name in input_names:
        files = sorted((root / name).glob("*.npy"))
        if not files:
            raise QuantizationError(
                f"no calibration data for input '{name}' in '{root}': expected DIR/<k>.npz files holding every "
                f"input, or DIR/{name}/<k>.npy files (one per sample)")
        per_input[name] = files
    counts = {n: len(f) for n, f in per_input.items()}
    if len(set(counts.values())) != 1:
        raise QuantizationError(f"calibration folders hold different sample counts: {counts}")
    n = next(iter(counts.values()))
    return [{name: np.load(files[k]) for name, files in per_input.items()} for k in range(n)]


def random_calibration(model: onnx.ModelProto, samples: int, seed: int = 0) -> list[dict[str, np.ndarray]]:
    """``samples`` seeded random input sets (``unified.graph.random_feed``,
    seeds ``seed .. seed + samples - 1``; symbolic dims are 1)."""
    from onnx.helper import tensor_dtype_to_np_dtype

    from unified.graph import random_feed

    if samples < 1:
        raise QuantizationError(f"samples must be >= 1, got {samples}")
    names = set(_input_names(model))
    infos = []
    for vi in model.graph.input:
        if vi.name in names:
            tt = vi.type.tensor_type
            shape = tuple(d.dim_value if d.HasField("dim_value") else d.dim_param for d in tt.shape.dim)
            infos.append(_InputInfo(vi.name, shape, np.dtype(tensor_dtype_to_np_dtype(tt.elem_type))))
    return [random_feed(infos, seed + k) for k in range(samples)]


class _InputInfo(NamedTuple):
    name: str
    shape: tuple
    dtype: np.dtype


def _input_names(model: onnx.ModelProto) -> list[str]:
    inits = {t.name for t in model.graph.initializer}
    return [i.name for i in model.graph.input if i.name not in inits]


def _check_samples(samples: Sequence[Mapping[str, np.ndarray]], model: onnx.ModelProto) -> list[dict[str, np.ndarray]]:
    """Cast each sample to the input's dtype; check every input is there."""
    from onnx.helper import tensor_dtype_to_np_dtype

    types = {i.name: i.type.tensor_type.elem_type for i in model.graph.input}
    out = []
    for k, sample in enumerate(samples):
        missing = [n for n in _input_names(model) if n not in sample]
        if missing:
            raise QuantizationError(f"calibration sample {k} lacks input(s) {missing}")
        out.append({n: np.ascontiguousarray(sample[n], dtype=tensor_dtype_to_np_dtype(types[n]))
                    for n in _input_names(model)})
    if not out:
        raise QuantizationError("no calibration samples")
    return out


def _prepare(model: onnx.ModelProto) -> onnx.ModelProto:
    """The model at opset >= :data:`MIN_QDQ_OPSET` and IR <= 10 (ONNX Runtime's quantizer reads it)."""
    model = convert_opset(model, MIN_QDQ_OPSET, "per-channel QDQ")
    model.ir_version = min(max(model.ir_version, 7), 10)
    return model


def convert_opset(model: onnx.ModelProto, opset: int, why: str) -> onnx.ModelProto:
    """``model`` at default-domain opset >= ``opset`` (``onnx.version_converter``; unchanged when already).

    Raises:
        QuantizationError: the converter failed (its message, and ``why`` the opset is needed).
    """
    from onnx import version_converter

    have = next((i.version for i in model.opset_import if i.domain in ("", "ai.onnx")), 1)
    if have >= opset:
        return model
    log.info("converting the model from opset %d to %d (%s needs it)", have, opset, why)
    try:
        return version_converter.convert_version(model, opset)
    except Exception as exc:
        raise QuantizationError(f"the model is opset {have}; converting it to opset {opset} for {why} failed: "
                                f"{' '.join(str(exc).split())[:300]}") from None


def quantize_static(
    model: Any,
    out: str | os.PathLike | None = None,
    calibration: str | os.PathLike | Sequence[Mapping[str, np.ndarray]] | None = None,
    samples: int = 32,
    seed: int = 0,
    preprocess: bool = True,
) -> onnx.ModelProto:
    """Quantize ``model`` to int8 QDQ (scheme in the module docstring).

    Args:
        model: path, bytes or ``ModelProto`` of a float model.
        out: where to write the quantized ``.onnx`` (None: not written).
        calibration: a folder (layouts in the module docstring) or a list of
            ``{input name: array}`` samples; None draws ``samples`` seeded
            random inputs and logs a warning.
        samples: random samples to draw when ``calibration`` is None (32).
        seed: seed of the first random sample.
        preprocess: run ``onnxruntime.quantization.shape_inference.quant_pre_process``
            first (symbolic shape inference and ORT's graph optimizations, e.g.
            BatchNormalization folded into Conv, so fewer tensors are quantized);
            a failure there is logged and the model is quantized as it is.

    Returns:
        The quantized model (QuantizeLinear/DequantizeLinear int8 pairs on
        activations, per-channel int8 weights, int32 biases).

    Raises:
        ModelError: the model cannot be read.
        QuantizationError: bad calibration data, or ONNX Runtime's quantizer failed.
    """
    from unified.graph import load_model

    fp32 = _prepare(load_model(model))
    if calibration is None:
        log.warning("calibrating on %d random inputs: random data is not representative of real inputs, so the "
                    "activation ranges and the accuracy are not those of a calibrated model", samples)
        data = random_calibration(fp32, samples, seed)
    elif isinstance(calibration, (str, os.PathLike)):
        data = load_calibration(calibration, _input_names(fp32))
    else:
        data = list(calibration)
    data = _check_samples(data, fp32)
    with tempfile.TemporaryDirectory(prefix="unified-quantize-") as tmp:
        src, dst = Path(tmp) / "float.onnx", Path(tmp) / "qdq.onnx"
        onnx.save(fp32, src)
        if preprocess:
            src = _preprocess(src, Path(tmp) / "pre.onnx")
        _run_quantizer(src, dst, data)
        result = _drop_unused_opsets(onnx.load(dst))
    if out is not None:
        onnx.save(result, os.fspath(out))
    return result


def _drop_unused_opsets(model: onnx.ModelProto) -> onnx.ModelProto:
    """Remove the opset imports ORT's optimizer adds for domains no node uses."""
    used = {n.domain for n in model.graph.node} | {""}
    keep = [o for o in model.opset_import if o.domain in used or o.domain == "ai.onnx"]
    del model.opset_import[:]
    model.opset_import.extend(keep)
    return model


def _preprocess(src: Path, dst: Path) -> Path:
    from onnxruntime.quantization.shape_inference import quant_pre_process

    try:
        quant_pre_process(str(src), str(dst), skip_symbolic_shape=False)
        return dst
    except Exception as exc:  # ORT's symbolic shape inference rejects some graphs
        log.info("quant_pre_process failed (%s); quantizing the model as it is", " ".join(str(exc).split())[:200])
        return src


def _run_quantizer(src: Path, dst: Path, data: list[dict[str, np.ndarray]]) -> None:
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType
    from onnxruntime.quantization import quantize_static as ort_quantize_static

    class _Reader(CalibrationDataReader):
        def __init__(self):
            self._items = iter(data)

        def get_next(self):
            return next(self._items, None)

    ort_log = logging.getLogger("onnxruntime")
    level = ort_log.level
    if not log.isEnabledFor(logging.DEBUG):
        ort_log.setLevel(logging.ERROR)  # the quantizer's INFO/WARNING chatter, unless -v
    try:
        ort_quantize_static(
            str(src), str(dst), _Reader(),
            quant_format=QuantFormat.QDQ, per_channel=True,
            activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
            extra_options={"WeightSymmetric": True, "ActivationSymmetric": False},
        )
    except Exception as exc:
        raise QuantizationError(
            f"onnxruntime.quantization.quantize_static failed: {type(exc).__name__}: "
            f"{' '.join(str(exc).split())[:400]}") from None
    finally:
        ort_log.setLevel(level)
