"""Symbolic dims, int64 boundary values and a quiet interpreter: the tflite
delegate as a ``static_shapes`` delegate (issue 10)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
from onnx import TensorProto as T
from onnx import helper

from unified import InferenceSession, SessionOptions
from unified.errors import DelegateError
from unified.graph import Graph
from unified.plugins import registry

from ...onnx_models import rand

N = helper.make_node


def _supports(model) -> dict[str, tuple[bool, str]]:
    tfl = registry().get("tflite")
    return {v.name: (s.ok, s.reason) for v in Graph(model).node_views for s in [tfl.supports(v)]}


def _shape_chain_model(make_model):
    """x [batch, 3, h, w] -> Reshape(x, Concat(Shape(x)[0], -1)) -> Relu: shape arithmetic on symbolic dims."""
    nodes = [
        N("Shape", ["x"], ["s"], name="shape"),
        N("Gather", ["s", "zero"], ["b"], axis=0, name="gather"),
        N("Unsqueeze", ["b", "ax0"], ["b1"], name="unsq"),
        N("Concat", ["b1", "minus1"], ["target"], axis=0, name="concat"),
        N("Reshape", ["x", "target"], ["r"], name="reshape"),
        N("Relu", ["r"], ["y"], name="relu"),
    ]
    consts = {"zero": np.array(0, np.int64), "ax0": np.array([0], np.int64), "minus1": np.array([-1], np.int64)}
    return make_model(nodes, {"x": (np.float32, ("batch", 3, "h", "w"))}, consts)


def test_claims_symbolic_dims_that_become_static(make_model) -> None:
    answers = _supports(_shape_chain_model(make_model))
    assert answers["relu"] == (True, "") and answers["reshape"][0], answers


def test_static_shapes_flag() -> None:
    assert registry().get("tflite").static_shapes is True


def test_shape_chain_runs_strictly_once_dims_are_pinned(make_model, ort_reference, tmp_path) -> None:
    m = _shape_chain_model(make_model)
    for h, w in ((4, 5), (6, 2)):
        opts = SessionOptions(strict=True, free_dimensions={"batch": 2, "h": h, "w": w}, cache_dir=tmp_path)
        sess = InferenceSession(m, delegates=["tflite"], options=opts)
        assert set(sess.plan.node_counts()) == {"tflite"}
        feeds = {"x": rand((2, 3, h, w))}
        np.testing.assert_array_equal(sess.run(None, feeds)[0], ort_reference(m, feeds)[0])


def test_data_dependent_slice_start_is_declined(make_model) -> None:
    nodes = [N("Slice", ["x", "st", "en"], ["y"], name="slice")]
    m = make_model(nodes, {"x": (np.float32, (8,)), "st": (np.int64, (1,))}, {"en": np.array([8], np.int64)})
    ok, reason = _supports(m)["slice"]
    assert not ok and "tensor data" in reason, reason


def test_int64_shape_from_onnxruntime_crosses_into_tflite(make_model, ort_reference, tmp_path) -> None:
    """A Shape output computed by ONNX Runtime feeds tflite's Add and Reshape.

    ORT returns int64 arrays typed ``NPY_LONGLONG``; LiteRT's ``set_tensor``
    only maps ``NPY_LONG`` and used to see ``NOTYPE``.
    """
    nodes = [N("Shape", ["x"], ["s"], name="shape"), N("Add", ["s", "one"], ["s2"], name="add"),
             N("Reshape", ["x", "s"], ["r"], name="reshape"), N("Relu", ["r"], ["y"], name="relu")]
    m = make_model(nodes, {"x": (np.float32, (2, 3, 4))}, {"one": np.array([1], np.int64)}, outputs=("s2", "y"))
    opts = SessionOptions(placement={"Shape": "onnxruntime"}, cache_dir=tmp_path)
    sess = InferenceSession(m, delegates=["tflite", "onnxruntime"], options=opts)
    assert [p.delegate for p in sess.plan.partitions][0] == "onnxruntime"
    assert "tflite" in sess.plan.node_counts()
    feeds = {"x": rand((2, 3, 4))}
    got, want = sess.run(None, feeds), ort_reference(m, feeds)
    assert got[0].dtype == np.int64
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])


def test_longlong_input_is_accepted_by_the_executable(make_model, tmp_path) -> None:
    m = make_model([N("Add", ["a", "b"], ["y"])], {"a": (np.int64, (3,)), "b": (np.int64, (3,))})
    sess = InferenceSession(m, delegates=["tflite"], options=SessionOptions(strict=True, cache_dir=tmp_path))
    a = np.array([1, 2, 3], dtype=np.longlong)
    assert a.dtype.num != np.dtype(np.int64).num or sys.platform == "win32"
    np.testing.assert_array_equal(sess.run(None, {"a": a, "b": a})[0], [2, 4, 6])


def test_converter_never_writes_a_dynamic_dim() -> None:
    from unified.delegates.tflite.builder import ModelBuilder

    b = ModelBuilder()
    with pytest.raises(DelegateError, match=r"tensor 'x' would get shape \[-1, 3\]; TFLite tensors need static"):
        b.tensor("x", [-1, 3], np.dtype(np.float32))


def test_negative_dim_value_is_declined_or_dynamic(make_model) -> None:
    """Paddle writes ``dim_value: -1`` for a dynamic dim; it must never reach the flatbuffer."""
    m = make_model([N("Relu", ["x"], ["y"], name="relu")], {"x": (np.float32, (2, 3))})
    m.graph.input[0].type.tensor_type.shape.dim[0].dim_value = -1
    m.graph.output[0].type.tensor_type.shape.dim[0].dim_value = -1
    try:
        ok, reason = _supports(m)["relu"]
    except Exception:  # the loader may refuse or rewrite -1 itself
        return
    view = next(v for v in Graph(m).node_views if v.name == "relu")
    if any(isinstance(d, int) and d < 0 for d in view.inputs[0].shape):
        assert not ok and "negative dim" in reason


_QUIET_SCRIPT = textwrap.dedent("""
    import numpy as np
    from onnx import helper, TensorProto as T
    from unified import InferenceSession, SessionOptions
    g = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                          [helper.make_tensor_value_info("x", T.FLOAT, [2, 3])],
                          [helper.make_tensor_value_info("y", T.FLOAT, [2, 3])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=10)
    s = InferenceSession(m, delegates=["tflite"], options=SessionOptions(strict=True, use_cache=False))
    print(s.run(None, {"x": np.ones((2, 3), np.float32)})[0].sum())
""")


def test_interpreter_is_quiet_on_stderr() -> None:
    proc = subprocess.run([sys.executable, "-c", _QUIET_SCRIPT], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "6.0"
    assert "TensorFlow Lite" not in proc.stderr and "XNNPACK" not in proc.stderr, proc.stderr
    assert not [line for line in proc.stderr.splitlines() if line.startswith(("INFO:", "WARNING:", "ERROR:"))]


def test_interpreter_speaks_when_unified_logs_at_debug() -> None:
    script = "import logging; logging.getLogger('unified').setLevel(logging.DEBUG)\n" + _QUIET_SCRIPT
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "XNNPACK" in proc.stderr


@pytest.mark.parametrize("etype", [np.int64, np.int32])
@pytest.mark.parametrize("const", [False, True])
def test_pow_with_an_integer_exponent(make_model, tfl_check, etype, const: bool) -> None:
    """ONNX Pow takes an integer exponent with a float base; TFLite POW needs equal types (a false claim once)."""
    e = np.array([0, 1, 2, 3], etype)
    if const:
        m = make_model([N("Pow", ["x", "e"], ["y"])], {"x": (np.float32, (3, 4))}, {"e": e})
        tfl_check(m, {"x": rand((3, 4), lo=-2, hi=2)})
    else:
        m = make_model([N("Pow", ["x", "e"], ["y"])], {"x": (np.float32, (3, 4)), "e": (etype, (4,))})
        tfl_check(m, {"x": rand((3, 4), lo=-2, hi=2), "e": e})


def test_reciprocal(make_model, tfl_check) -> None:
    m = make_model([N("Reciprocal", ["x"], ["y"])], {"x": (np.float32, (2, 3, 4))})
    tfl_check(m, {"x": rand((2, 3, 4), lo=0.5, hi=3.0)})


def test_resize_with_constant_scales_on_a_symbolic_batch_is_claimed(make_model, ort_reference, tmp_path) -> None:
    """PaddleOCR's detector: inference gives the Resize output a fresh batch name; the scales say it is kept."""
    nodes = [N("Resize", ["x", "roi", "scales"], ["y"], mode="nearest", coordinate_transformation_mode="asymmetric",
               nearest_mode="floor", name="resize")]
    consts = {"roi": np.zeros((0,), np.float32), "scales": np.array([1, 1, 2, 2], np.float32)}
    m = make_model(nodes, {"x": (np.float32, ("n", 4, "h", "w"))}, consts, opset=12)
    m.graph.output[0].type.tensor_type.shape.dim[0].dim_param = "other"
    assert _supports(m)["resize"] == (True, "")
    opts = SessionOptions(strict=True, free_dimensions={"n": 2, "h": 3, "w": 5}, cache_dir=tmp_path)
    feeds = {"x": rand((2, 4, 3, 5))}
    got = InferenceSession(m, delegates=["tflite"], options=opts).run(None, feeds)[0]
    np.testing.assert_array_equal(got, ort_reference(m, feeds)[0])


def test_resize_scaling_channels_is_declined(make_model) -> None:
    nodes = [N("Resize", ["x", "roi", "scales"], ["y"], mode="nearest", coordinate_transformation_mode="asymmetric",
               nearest_mode="floor", name="resize")]
    consts = {"roi": np.zeros((0,), np.float32), "scales": np.array([1, 2, 2, 2], np.float32)}
    m = make_model(nodes, {"x": (np.float32, ("n", 4, "h", "w"))}, consts, opset=12)
    ok, reason = _supports(m)["resize"]
    assert not ok and "scales the batch or channel dim" in reason


def test_rank0_partition_input_stays_rank0(make_model) -> None:
    """A scalar boundary value (Pow's exponent, Gemm's scalar bias, Dropout's ratio) is set as a 0-d tensor.

    ``np.ascontiguousarray`` would make it 1-d ("Dimension mismatch. Got 1 but expected 0").
    """
    from unified.delegate import CompileOptions

    m = make_model([N("Pow", ["x", "e"], ["y"])], {"x": (np.float32, (3,)), "e": (np.float32, ())})
    exe = registry().get("tflite").compile(m, CompileOptions("cpu"))
    x = np.array([1.0, 2.0, 3.0], np.float32)
    np.testing.assert_allclose(exe.run({"x": x, "e": np.array(2.0, np.float32)})["y"], x ** 2)
    np.testing.assert_allclose(exe.run({"x": x, "e": np.float32(3.0)})["y"], x ** 3, rtol=1e-6)


@pytest.mark.parametrize("starts, ends, axes, steps", [
    ([-1], [np.iinfo(np.int64).min], [1], [-1]),  # reverse a dim (torch.flip)
    ([5], [1], [3], [-2]),
    ([3, -2], [0, -9], [1, 3], [-1, -1]),
    ([100], [-100], [2], [-1]),
])
def test_slice_with_negative_steps_after_a_conv(make_model, tfl_check, starts, ends, axes, steps) -> None:
    """Negative steps on an NHWC activation: STRIDED_SLICE with an end_mask where the slice runs through index 0."""
    w = np.random.default_rng(3).normal(0, 0.3, (6, 3, 3, 3)).astype(np.float32)
    consts = {"W": w, "s": np.array(starts, np.int64), "e": np.array(ends, np.int64),
              "a": np.array(axes, np.int64), "p": np.array(steps, np.int64)}
    nodes = [N("Conv", ["x", "W"], ["c"], pads=[1, 1, 1, 1]), N("Slice", ["c", "s", "e", "a", "p"], ["y"])]
    m = make_model(nodes, {"x": (np.float32, (1, 3, 8, 7))}, consts)
    tfl_check(m, {"x": rand((1, 3, 8, 7))}, exact=False)
