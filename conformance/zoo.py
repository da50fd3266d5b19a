"""Real models to test against, all available offline.

* The nine ``light_*.onnx`` architectures shipped in the onnx wheel
  (``onnx/backend/test/data/light``) and their shipped reference outputs.
  Their weights are ``ConstantOfShape`` fills, so their outputs are uniform;
  :func:`redraw_weights` replaces each weight-producing ``ConstantOfShape`` by
  a seeded random initializer (He-scaled for Conv/Gemm/MatMul weights) so a
  wrong kernel shows up in the numbers. :func:`calibrate_batchnorm` (or
  ``redraw_weights(..., calibrate=True)``) then sets each BatchNormalization's
  mean and variance to the statistics of its input, as training does, so the
  activations of a deep re-drawn net stay near unit scale (fp16 checks).
* Torch-built nets and the MiniLM export live in ``conformance/nets.py`` (they
  need torch).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from unified.graph import TensorInfo, random_feed
from unified.onnx.topology import producers

__all__ = [
    "LIGHT_MODELS",
    "light_dir",
    "light_model_path",
    "light_reference_output",
    "redraw_weights",
    "calibrate_batchnorm",
    "random_inputs",
]

LIGHT_MODELS = (
    "bvlc_alexnet",
    "densenet121",
    "inception_v1",
    "inception_v2",
    "resnet50",
    "shufflenet",
    "squeezenet",
    "vgg19",
    "zfnet512",
)


def light_dir() -> Path:
    """Folder of the light models inside the installed onnx package."""
    return Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"


def light_model_path(name: str) -> Path:
    """Path of ``light_<name>.onnx``.

    Raises:
        FileNotFoundError: unknown name (lists the valid ones) or a stripped onnx install.
    """
    if name not in LIGHT_MODELS:
        raise FileNotFoundError(f"unknown light model '{name}'; choose one of: {', '.join(LIGHT_MODELS)}")
    path = light_dir() / f"light_{name}.onnx"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the installed onnx package")
    return path


def light_reference_output(name: str) -> np.ndarray:
    """The reference output shipped next to the model (``light_<name>_output_0.pb``)."""
    t = onnx.TensorProto()
    t.ParseFromString((light_dir() / f"light_{name}_output_0.pb").read_bytes())
    return numpy_helper.to_array(t)


def _consumers(graph: onnx.GraphProto) -> dict[str, list[tuple[onnx.NodeProto, int]]]:
    out: dict[str, list[tuple[onnx.NodeProto, int]]] = {}
    for n in graph.node:
        for slot, x in enumerate(n.input):
            out.setdefault(x, []).append((n, slot))
    return out


def _draw(shape: tuple[int, ...], node: onnx.NodeProto, slot: int, rng: np.random.Generator) -> np.ndarray | None:
    """A random value for a weight of ``node`` at input ``slot``, or None to keep the fill."""
    op = node.op_type
    if op in ("Conv", "ConvTranspose", "Gemm", "MatMul") and slot == 1:
        if op == "Conv":
            fan_in = int(np.prod(shape[1:]))
        elif op == "ConvTranspose":
            fan_in = int(shape[0] * np.prod(shape[2:]))
        elif op == "Gemm":
            trans_b = next((a.i for a in node.attribute if a.name == "transB"), 0)
            fan_in = shape[1] if trans_b else shape[0]
        else:
            fan_in = shape[-2] if len(shape) >= 2 else shape[0]
        # He et al. 2015, "Delving Deep into Rectifiers", eq. 10: std = sqrt(2 / fan_in)
        return rng.normal(0.0, np.sqrt(2.0 / max(fan_in, 1)), shape)
    if op in ("Conv", "ConvTranspose", "Gemm") and slot == 2:
        return rng.normal(0.0, 0.05, shape)
    if op == "BatchNormalization" and slot in (1, 4):  # scale, variance: positive, near 1
        return rng.uniform(0.5, 1.5, shape)
    if op == "BatchNormalization" and slot in (2, 3):  # bias, mean
        return rng.normal(0.0, 0.1, shape)
    if op in ("Add", "Mul", "Sum", "PRelu") and len(shape) >= 1:
        return rng.normal(0.0 if op != "Mul" else 1.0, 0.1, shape)
    return None


def redraw_weights(model: onnx.ModelProto, seed: int = 0, calibrate: bool = False) -> onnx.ModelProto:
    """Replace weight-producing ``ConstantOfShape`` nodes by random initializers.

    A ``ConstantOfShape`` whose shape input is a constant and whose output
    feeds a Conv/ConvTranspose/Gemm/MatMul weight or bias, a
    BatchNormalization parameter, or an Add/Mul/Sum/PRelu operand becomes an
    initializer drawn from a seeded NumPy generator (float32). Weights use He
    normal initialization; BatchNormalization scale and variance are drawn
    from U(0.5, 1.5) so the variance stays positive. Other fills are kept.

    With random BatchNormalization statistics the activations of a deep net
    grow layer after layer (ResNet-50 reaches 2.8e5, past fp16's 65504);
    ``calibrate=True`` fixes that as training would (see
    :func:`calibrate_batchnorm`).

    Args:
        model: not modified.
        seed: seed of ``numpy.random.default_rng``.
        calibrate: then set every BatchNormalization's mean and variance to
            the statistics of its input on ``random_inputs(model, seed + 1)``
            (seed + 1: the calibration data is not the usual evaluation
            data ``random_inputs(seed)``). Needs onnxruntime. A model without
            BatchNormalization is unchanged by it.

    Returns:
        A new model.
    """
    out = onnx.ModelProto()
    out.CopyFrom(model)
    g = out.graph
    rng = np.random.default_rng(seed)
    inits = {t.name: t for t in g.initializer}
    consumers = _consumers(g)
    keep, new_inits = [], []
    for n in g.node:
        if n.op_type == "ConstantOfShape" and n.input and n.input[0] in inits:
            shape = tuple(int(d) for d in numpy_helper.to_array(inits[n.input[0]]).reshape(-1))
            users = consumers.get(n.output[0], [])
            value = _draw(shape, *users[0], rng) if users else None
            if value is not None:
                new_inits.append(numpy_helper.from_array(value.astype(np.float32), n.output[0]))
                continue
        keep.append(n)
    del g.node[:]
    g.node.extend(keep)
    g.initializer.extend(new_inits)
    if out.ir_version < 4:
        out.ir_version = 4  # initializers need not be graph inputs from IR 4 on
    _drop_unused_initializers(g)
    used = {x for n in g.node for x in n.input} | {o.name for o in g.output}
    init_names = {t.name for t in g.initializer}
    inputs = [i for i in g.input if i.name not in init_names and i.name in used]
    del g.input[:]
    g.input.extend(inputs)
    return calibrate_batchnorm(out, random_inputs(out, seed + 1)) if calibrate else out


def random_inputs(model: onnx.ModelProto, seed: int = 0, dims: dict[str, int] | None = None) -> dict[str, np.ndarray]:
    """Seeded inputs for every graph input (initializers excluded).

    Floats ~ U(-1, 1); integers in [0, 10); bools random. Symbolic dims take
    their value from ``dims`` (default 1).

    Raises:
        ValueError: an input without a tensor type.
    """
    init_names = {t.name for t in model.graph.initializer}
    infos = []
    for vi in model.graph.input:
        if vi.name in init_names:
            continue
        tt = vi.type.tensor_type
        if not tt.elem_type:
            raise ValueError(f"input '{vi.name}' has no tensor type")
        shape = tuple(d.dim_value if d.HasField("dim_value") else d.dim_param for d in tt.shape.dim)
        infos.append(TensorInfo(vi.name, tt.elem_type, shape))
    return random_feed(infos, seed, dims)


def calibrate_batchnorm(
    model: onnx.ModelProto,
    feeds: Mapping[str, np.ndarray] | Iterable[Mapping[str, np.ndarray]],
    min_var: float = 1e-6,
) -> onnx.ModelProto:
    """Set every BatchNormalization's mean and variance to the statistics of its input.

    What a trained net's running statistics are: the per-channel mean and
    (biased) variance of the BatchNormalization input ``X`` over the
    calibration data, reduced over every axis but the channel axis 1
    (Ioffe & Szegedy 2015, "Batch Normalization", Alg. 2: inference uses
    the population statistics). The output of each BatchNormalization is then
    ``scale * x_hat + B`` with ``x_hat`` of zero mean and unit variance per
    channel on that data, so activations stay near the scale of ``scale`` and
    ``B`` however deep the net, as in a trained net. Scale, bias and every
    other weight are kept.

    The statistics are measured with ONNX Runtime (CPU), in passes: a pass
    calibrates every BatchNormalization whose upstream BatchNormalizations are
    all calibrated already (one pass per BatchNormalization on the longest
    chain of them; 49 passes for the 53 of ResNet-50).

    Args:
        model: not modified. Each BatchNormalization's mean and variance
            (inputs 3 and 4) must be initializers of shape ``(C,)``.
        feeds: one feed (input name -> array) or several; the statistics pool
            all of them.
        min_var: floor of a channel's variance (a constant channel would
            otherwise divide by ``sqrt(epsilon)``).

    Returns:
        A new model; the new statistics are float32 initializers named
        ``<BN output>_calibrated_mean`` / ``_calibrated_var``. A model without
        BatchNormalization comes back as an unchanged copy.

    Raises:
        ValueError: a mean or variance that is not a ``(C,)`` initializer, or
            no feed.
    """
    feeds = [dict(feeds)] if isinstance(feeds, Mapping) else [dict(f) for f in feeds]
    if not feeds:
        raise ValueError("calibrate_batchnorm needs at least one feed")
    nodes = list(model.graph.node)
    bns = [i for i, n in enumerate(nodes) if n.op_type == "BatchNormalization"]
    inits = {t.name: t for t in model.graph.initializer}
    stats: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for i in bns:
        mean, var = (inits.get(x) for x in nodes[i].input[3:5])
        if mean is None or var is None or len(mean.dims) != 1:
            raise ValueError(f"BatchNormalization '{nodes[i].name or nodes[i].output[0]}': mean and variance must be "
                             "(C,) initializers to calibrate")
        stats[i] = (numpy_helper.to_array(mean).astype(np.float32), numpy_helper.to_array(var).astype(np.float32))
    if bns:
        _measure_bn_stats(model, bns, feeds, stats, min_var)
    return _with_bn_stats(model, stats)


def _bn_upstream(nodes: list[onnx.NodeProto], bns: list[int]) -> dict[int, set[int]]:
    """BatchNormalization index -> the BatchNormalization indices upstream of it (nodes topologically sorted)."""
    produced_by = producers(nodes)
    reach: list[frozenset[int]] = []
    for i, n in enumerate(nodes):
        up = frozenset().union(*(reach[produced_by[x]] for x in n.input if x in produced_by))
        reach.append(up | {i} if n.op_type == "BatchNormalization" else up)
    return {i: set(reach[i]) - {i} for i in bns}


def _measure_bn_stats(model, bns, feeds, stats, min_var) -> None:
    """Fill ``stats`` (BN index -> (mean, var)) pass by pass, with ORT on a probe model (see calibrate_batchnorm)."""
    import onnxruntime as ort

    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    probe.ir_version = min(probe.ir_version, 10)  # onnxruntime reads IR <= 10 everywhere; onnx may write newer
    nodes, g = probe.graph.node, probe.graph
    known_outputs = {o.name for o in g.output}
    for i in bns:
        n = nodes[i]
        n.input[3], n.input[4] = f"__calib_mean_{i}", f"__calib_var_{i}"
        for name in n.input[3:5]:
            g.input.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, [len(stats[i][0])]))
        if n.input[0] not in known_outputs and n.input[0] not in feeds[0]:
            g.output.append(onnx.helper.make_tensor_value_info(n.input[0], onnx.TensorProto.FLOAT, None))
            known_outputs.add(n.input[0])
    so = ort.SessionOptions()
    so.log_severity_level = 3
    session = ort.InferenceSession(probe.SerializeToString(), so, providers=["CPUExecutionProvider"])
    upstream = _bn_upstream(list(model.graph.node), bns)
    done: set[int] = set()
    while len(done) < len(bns):
        ready = [i for i in bns if i not in done and upstream[i] <= done]
        params = {f"__calib_{k}_{i}": stats[i][j] for i in bns for j, k in enumerate(("mean", "var"))}
        fetch = sorted({nodes[i].input[0] for i in ready} - feeds[0].keys())
        xs = [dict(zip(fetch, session.run(fetch, {**f, **params}))) | f for f in feeds]
        for i in ready:
            x = np.concatenate([np.asarray(v[nodes[i].input[0]], np.float64) for v in xs])
            axes = tuple(a for a in range(x.ndim) if a != 1)
            mean, var = x.mean(axis=axes), x.var(axis=axes)
            stats[i] = (mean.astype(np.float32), np.maximum(var, min_var).astype(np.float32))
        done.update(ready)


def _with_bn_stats(model: onnx.ModelProto, stats: dict[int, tuple[np.ndarray, np.ndarray]]) -> onnx.ModelProto:
    """A copy of ``model`` whose BatchNormalizations (by node index) read the given mean and variance."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    g = out.graph
    for i, (mean, var) in stats.items():
        n = g.node[i]
        for slot, name, value in ((3, "mean", mean), (4, "var", var)):
            n.input[slot] = f"{n.output[0]}_calibrated_{name}"
            g.initializer.append(numpy_helper.from_array(value.astype(np.float32), n.input[slot]))
    dropped = _drop_unused_initializers(g)
    inputs = [i for i in g.input if i.name not in dropped]
    del g.input[:]
    g.input.extend(inputs)
    return out


def _drop_unused_initializers(g: onnx.GraphProto) -> set[str]:
    """Remove (in place) the initializers no node and no graph output reads; returns their names."""
    used = {x for n in g.node for x in n.input} | {o.name for o in g.output}
    dropped = {t.name for t in g.initializer if t.name not in used}
    kept = [t for t in g.initializer if t.name not in dropped]
    del g.initializer[:]
    g.initializer.extend(kept)
    return dropped
