"""Source ``models``: whole models, compared against the oracle (ONNX Runtime).

* ``light/<name>`` — the nine ``light_*.onnx`` architectures shipped with
  onnx, their ``ConstantOfShape`` weights re-drawn with seed 0
  (``zoo.redraw_weights``), inputs from ``zoo.random_inputs(seed=0)``.
* ``nets/<name>`` — the seeded torch-built nets of ``conformance/nets.py``
  (MobileNet-style CNN, transformer block, LSTM, int8 QDQ CNN) and
  all-MiniLM-L6-v2 with real weights, on tokenized text. Torch exports are
  cached (``~/.cache/unified/models``); a missing torch or MiniLM package
  makes the case ``skipped`` with the reason.

Tolerance: float32 whole models get atol 1e-4, rtol 1e-3, looser than the
per-op profile because kernels may legitimately sum in a different order
over tens of layers (float32 round-off grows with depth); int8 QDQ outputs
keep the +-1 profile.
"""

from __future__ import annotations

import functools
from typing import Sequence

import onnx

from unified.conformance.cases import Case, CaseData, CaseSource
from unified.conformance.compare import Tolerance

__all__ = ["SOURCE", "model_cases", "build_light", "build_net", "MODEL_TOLERANCE"]

SOURCE = "models"
MODEL_TOLERANCE = Tolerance(atol=1e-4, rtol=1e-3)

# (name, per-case time limit in seconds); VGG-19 is 550 MB of weights
_LIGHT_LIMITS = {"vgg19": 300.0, "zfnet512": 240.0, "bvlc_alexnet": 240.0}
_NETS = ("mobilenet_like", "transformer_block", "lstm_net", "qdq_cnn", "minilm")
_NET_INPUT_DTYPE = {"minilm": "int64"}  # the others take float32
MINILM_SENTENCES = (
    "unified runs one model on many delegates",
    "the conformance suite checks every claim a delegate makes",
)


def build_light(name: str, seed: int = 0) -> CaseData:
    """``light_<name>.onnx`` with re-drawn weights and seeded inputs."""
    from unified.conformance import zoo

    model = zoo.redraw_weights(onnx.load(zoo.light_model_path(name)), seed=seed)
    model.ir_version = min(model.ir_version, 10)
    return CaseData(model, [(zoo.random_inputs(model, seed=seed), None)])


def build_net(name: str, seed: int = 0) -> CaseData:
    """A net from ``unified.conformance.nets`` with seeded (or tokenized) inputs."""
    from unified.conformance import nets, zoo

    if name == "minilm":
        model = nets.minilm(shape=(2, 16))
        feeds = nets.minilm_tokenize(list(MINILM_SENTENCES), seq=16)
        return CaseData(model, [(feeds, None)])
    model = getattr(nets, name)(seed=seed)
    return CaseData(model, [(zoo.random_inputs(model, seed=seed), None)])


def model_cases() -> list[Case]:
    """Every whole-model case."""
    from unified.conformance import zoo

    cases = []
    for name in zoo.LIGHT_MODELS:
        cases.append(Case(
            id=f"{SOURCE}/light/{name}",
            source=SOURCE,
            loader=functools.partial(build_light, name, 0),
            dtype="float32",
            dtypes=("float32",),
            group=f"model:{name}",
            tolerance=MODEL_TOLERANCE,
            timeout=_LIGHT_LIMITS.get(name, 180.0),
            tags=("light",),
        ))
    for name in _NETS:
        dtype = _NET_INPUT_DTYPE.get(name, "float32")
        cases.append(Case(
            id=f"{SOURCE}/nets/{name}",
            source=SOURCE,
            loader=functools.partial(build_net, name, 0),
            dtype=dtype,
            dtypes=(dtype, "float32") if dtype != "float32" else ("float32",),
            group=f"model:{name}",
            tolerance=MODEL_TOLERANCE,
            timeout=300.0 if name == "minilm" else 180.0,
            tags=("torch", "qdq") if name == "qdq_cnn" else ("torch",),
        ))
    return cases


def fast_subset(cases: Sequence[Case]) -> list[Case]:
    """SqueezeNet (light) and the MobileNet-style net: two CNNs, seconds each."""
    keep = {f"{SOURCE}/light/squeezenet", f"{SOURCE}/nets/mobilenet_like"}
    return [c for c in cases if c.id in keep]


def source() -> CaseSource:
    return CaseSource(
        SOURCE,
        "whole models: light_* architectures with re-drawn weights, torch-built nets, QDQ int8, MiniLM",
        model_cases,
        fast_subset,
    )
