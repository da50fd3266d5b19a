"""Source ``onnx-node``: the ONNX backend node tests of the installed onnx.

``onnx.backend.test.case.node.collect_testcases()`` generates every node
test (about 1,900 with onnx 1.23) in memory, each a small model with inputs,
expected outputs and its own ``rtol``/``atol`` (1e-3 / 1e-7, what onnx's
own ``BackendTest`` runner applies). ``*_expanded`` cases are the same test
with the op replaced by its function body; they are tagged with the op of
their non-expanded sibling.
"""

from __future__ import annotations

import functools
import warnings
from typing import Any, Sequence

import numpy as np
import onnx
from onnx import numpy_helper

from unified.conformance.cases import Case, CaseSource, StaticCase, dtype_name
from unified.conformance.compare import Tolerance

__all__ = ["SOURCE", "node_cases", "to_value", "FAST_OPS"]

SOURCE = "onnx-node"

FAST_OPS = (
    "Add", "AveragePool", "BatchNormalization", "Concat", "Conv", "Gemm", "GlobalAveragePool", "HardSwish",
    "LayerNormalization", "MatMul", "MaxPool", "Mul", "Relu", "Reshape", "Sigmoid", "Softmax", "Transpose",
)
"""Ops of the fast subset (the ops of CNNs and transformers); its first two
non-expanded cases each."""


RANDOM_TESTS = ("test_training_dropout",)
"""Name prefixes of node tests whose outputs are random draws (training-mode
Dropout's mask): their expected values come from NumPy's generator, which no
backend reproduces, so only output shapes and dtypes are compared."""

TOLERANCE_OVERRIDES = {
    "test_dft": Tolerance(atol=1e-3, rtol=1e-3),
    "test_stft": Tolerance(atol=1e-3, rtol=1e-3),
}
"""Name prefix -> tolerance replacing onnx's (atol 1e-7). The DFT/STFT tests
transform ``arange`` signals whose spectra reach ~5e3; float32 round-off of
an N-point FFT is about eps * max|X| * log2(N) (Higham, *Accuracy and
Stability of Numerical Algorithms*, 2nd ed., section 24.1), i.e. ~3e-3 at
that scale, so onnx's atol 1e-7 on the exact zeros of the spectrum is below
float32 resolution. ONNX Runtime's own backend runner loosens these tests too
(``onnx_backend_test_series_overrides.jsonc``: test_dft atol 1e-4)."""


def to_value(v: Any) -> Any:
    """A node test's input/output as what a session takes and returns:
    ``TensorProto`` (used for dtypes NumPy lacks) -> array (ml_dtypes for
    bfloat16/float8/int4), NumPy scalar -> 0-d array, lists element-wise."""
    if isinstance(v, onnx.TensorProto):
        return numpy_helper.to_array(v)
    if isinstance(v, np.generic):
        return np.asarray(v)
    if isinstance(v, (list, tuple)):
        return [to_value(x) for x in v]
    return v


def _type_name(tp: onnx.TypeProto) -> str:
    kind = tp.WhichOneof("value")
    if kind == "tensor_type":
        return dtype_name(tp.tensor_type.elem_type)
    if kind == "sequence_type":
        return f"seq({_type_name(tp.sequence_type.elem_type)})"
    if kind == "optional_type":
        return f"optional({_type_name(tp.optional_type.elem_type)})"
    if kind == "map_type":
        return "map"
    if kind == "sparse_tensor_type":
        return f"sparse({dtype_name(tp.sparse_tensor_type.elem_type)})"
    return "unknown"


def _case(tc, ops: dict[str, tuple[str, str, str]]) -> Case:
    model: onnx.ModelProto = tc.model
    base = tc.name.split("_expanded")[0]
    op, domain, dtype = ops.get(base, ("", "", ""))
    if not op:
        op, domain, dtype = _op_of(model)
    wanted = (domain,) if domain else ("", "ai.onnx")
    opset = next((i.version for i in model.opset_import if i.domain in wanted), 0)
    types = [_type_name(v.type) for v in list(model.graph.input) + list(model.graph.output)]
    data_sets = tuple(
        ({vi.name: to_value(x) for vi, x in zip(_real_inputs(model), ins)}, [to_value(x) for x in outs])
        for ins, outs in tc.data_sets
    )
    tags = ("expanded",) if tc.name != base else ()
    return Case(
        id=f"{SOURCE}/{tc.name}",
        source=SOURCE,
        loader=StaticCase(model.SerializeToString(), data_sets),
        op=op,
        domain=domain,
        opset=opset,
        dtype=dtype,
        dtypes=tuple(sorted(set(types))),
        group=op,
        tolerance=next((t for p, t in TOLERANCE_OVERRIDES.items() if tc.name.startswith(p)),
                       Tolerance(atol=tc.atol, rtol=tc.rtol)),
        tags=tags,
        compare_values=not tc.name.startswith(RANDOM_TESTS),
    )


def _real_inputs(model: onnx.ModelProto) -> list[onnx.ValueInfoProto]:
    inits = {t.name for t in model.graph.initializer}
    return [i for i in model.graph.input if i.name not in inits]


def _op_of(model: onnx.ModelProto) -> tuple[str, str, str]:
    """(op, domain, dtype of its first input) of a single-node test model."""
    node = model.graph.node[0]
    types = {v.name: v.type for v in list(model.graph.input) + list(model.graph.value_info)}
    for t in model.graph.initializer:
        types.setdefault(t.name, onnx.helper.make_tensor_type_proto(t.data_type, list(t.dims)))
    first = next((x for x in node.input if x), "")
    dtype = _type_name(types[first]) if first in types else ""
    domain = "" if node.domain == "ai.onnx" else node.domain
    return node.op_type, domain, dtype


@functools.lru_cache(maxsize=1)
def node_cases() -> tuple[Case, ...]:
    """Every node test as a :class:`Case` (generated once per process, ~4 s)."""
    from onnx.backend.test.case.node import collect_testcases

    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        testcases = collect_testcases()
    ops = {tc.name: _op_of(tc.model) for tc in testcases if "_expanded" not in tc.name and tc.model.graph.node}
    return tuple(_case(tc, ops) for tc in testcases)


def fast_subset(cases: Sequence[Case], per_op: int = 2) -> list[Case]:
    """The first ``per_op`` non-expanded cases of each op in :data:`FAST_OPS`."""
    taken: dict[str, int] = {}
    out = []
    for c in cases:
        if c.op in FAST_OPS and "expanded" not in c.tags and taken.get(c.op, 0) < per_op:
            taken[c.op] = taken.get(c.op, 0) + 1
            out.append(c)
    return out


def source() -> CaseSource:
    return CaseSource(
        SOURCE,
        "ONNX backend node tests from the installed onnx package, with their expected outputs",
        lambda: list(node_cases()),
        fast_subset,
    )
