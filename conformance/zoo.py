"""Real models to test against, all available offline.

* The nine ``light_*.onnx`` architectures shipped in the onnx wheel
  (``onnx/backend/test/data/light``) and their shipped reference outputs.
  Their weights are ``ConstantOfShape`` fills, so their outputs are uniform;
  :func:`redraw_weights` replaces each weight-producing ``ConstantOfShape`` by
  a seeded random initializer (He-scaled for Conv/Gemm/MatMul weights) so a
  wrong kernel shows up in the numbers.
* Torch-built nets and the MiniLM export live in ``conformance/nets.py`` (they
  need torch).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from unified.graph import TensorInfo, random_feed

__all__ = [
    "LIGHT_MODELS",
    "light_dir",
    "light_model_path",
    "light_reference_output",
    "redraw_weights",
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


def redraw_weights(model: onnx.ModelProto, seed: int = 0) -> onnx.ModelProto:
    """Replace weight-producing ``ConstantOfShape`` nodes by random initializers.

    A ``ConstantOfShape`` whose shape input is a constant and whose output
    feeds a Conv/ConvTranspose/Gemm/MatMul weight or bias, a
    BatchNormalization parameter, or an Add/Mul/Sum/PRelu operand becomes an
    initializer drawn from a seeded NumPy generator (float32). Weights use He
    normal initialization; BatchNormalization scale and variance are drawn
    from U(0.5, 1.5) so the variance stays positive. Other fills are kept.

    Args:
        model: not modified.
        seed: seed of ``numpy.random.default_rng``.

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
    used = {x for n in g.node for x in n.input} | {o.name for o in g.output}
    kept = [t for t in g.initializer if t.name in used]
    del g.initializer[:]
    g.initializer.extend(kept)
    init_names = {t.name for t in kept}
    inputs = [i for i in g.input if i.name not in init_names and i.name in used]
    del g.input[:]
    g.input.extend(inputs)
    return out


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
