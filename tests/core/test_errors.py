"""Every user mistake raises a specific UnifiedError naming what was wrong."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from unified import InferenceSession, SessionOptions
from unified.errors import DelegateUnavailableError, InputError, ModelError, UnifiedError


def add_model(opset: int = 17, ir: int = 10) -> onnx.ModelProto:
    g = helper.make_graph(
        [helper.make_node("Add", ["a", "b"], ["y"])],
        "add",
        [
            helper.make_tensor_value_info("a", TensorProto.FLOAT, ["batch", 3]),
            helper.make_tensor_value_info("b", TensorProto.FLOAT, ["batch", 3]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3])],
    )
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], ir_version=ir)


@pytest.fixture
def sess():
    return InferenceSession(add_model(), ["onnxruntime"], SessionOptions(use_cache=False))


def ones(*shape, dtype=np.float32):
    return np.ones(shape, dtype=dtype)


def test_corrupt_file(tmp_path):
    path = tmp_path / "bad.onnx"
    path.write_bytes(b"\x08\x07garbage-not-protobuf\xff\xff\xff")
    with pytest.raises(ModelError, match=r"could not parse '.*bad.onnx' as an ONNX model"):
        InferenceSession(str(path))


def test_truncated_file(tmp_path):
    data = add_model().SerializeToString()
    path = tmp_path / "cut.onnx"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelError, match="truncated|could not parse"):
        InferenceSession(path)


def test_empty_bytes_and_missing_file(tmp_path):
    with pytest.raises(ModelError, match="has no graph"):
        InferenceSession(b"")
    with pytest.raises(ModelError, match=r"model file '.*nope.onnx' does not exist"):
        InferenceSession(tmp_path / "nope.onnx")
    with pytest.raises(ModelError, match="expected a path, bytes or onnx.ModelProto"):
        InferenceSession(12345)


def test_unknown_opset():
    with pytest.raises(ModelError, match=r"imports opset 99 of domain 'ai.onnx'.*knows opsets up to \d+"):
        InferenceSession(add_model(opset=99))


def test_invalid_graph_names_the_problem():
    model = add_model()
    model.graph.node[0].input[1] = "undefined_value"
    with pytest.raises(ModelError, match="not valid ONNX.*undefined_value"):
        InferenceSession(model)


def test_missing_input(sess):
    with pytest.raises(InputError, match=r"missing input\(s\) \['b'\]; the model's inputs are: a: tensor\(float\) \[batch, 3\]"):
        sess.run(None, {"a": ones(2, 3)})


def test_extra_input(sess):
    with pytest.raises(InputError, match=r"unknown input\(s\) \['c'\]"):
        sess.run(None, {"a": ones(2, 3), "b": ones(2, 3), "c": ones(2, 3)})


def test_wrong_dtype(sess):
    with pytest.raises(InputError, match=r"input 'b' has dtype float64, expected float32 \(tensor\(float\)\); convert it with .astype\(np.float32\)"):
        sess.run(None, {"a": ones(2, 3), "b": ones(2, 3, dtype=np.float64)})


def test_wrong_rank(sess):
    with pytest.raises(InputError, match=r"input 'a' has rank 3 \(shape \[2, 3, 1\]\), expected rank 2 with shape \[batch, 3\]"):
        sess.run(None, {"a": ones(2, 3, 1), "b": ones(2, 3)})


def test_wrong_fixed_dim(sess):
    with pytest.raises(InputError, match=r"input 'a' has shape \[2, 4\], expected \[batch, 3\] \(dim 1 must be 3\)"):
        sess.run(None, {"a": ones(2, 4), "b": ones(2, 3)})


def test_inconsistent_symbolic_dim(sess):
    with pytest.raises(InputError, match=r"input 'b' dim 0 \('batch'\) is 5, but input 'a' set 'batch' = 2"):
        sess.run(None, {"a": ones(2, 3), "b": ones(5, 3)})


def test_not_an_array(sess):
    with pytest.raises(InputError, match="input 'a' must be a numpy.ndarray of tensor\\(float\\), got dict"):
        sess.run(None, {"a": {}, "b": ones(2, 3)})


def test_unknown_output_name(sess):
    with pytest.raises(InputError, match=r"unknown output name\(s\) \['z'\]; the model's outputs are: y"):
        sess.run(["z"], {"a": ones(2, 3), "b": ones(2, 3)})


def test_good_run_still_works_after_errors(sess):
    (y,) = sess.run(["y"], {"a": ones(2, 3), "b": np.full((2, 3), 2, np.float32)})
    np.testing.assert_array_equal(y, np.full((2, 3), 3, np.float32))
    # non-contiguous input is accepted and copied, never misread
    a = np.arange(12, dtype=np.float32).reshape(4, 3)[::2]
    assert not a.flags.c_contiguous
    (y,) = sess.run(None, {"a": a, "b": ones(2, 3)})
    np.testing.assert_array_equal(y, a + 1)


def test_unknown_and_bad_delegate_entries():
    with pytest.raises(DelegateUnavailableError, match="unknown delegate 'nope'; registered delegates: .*onnxruntime"):
        InferenceSession(add_model(), delegates=["nope"])
    with pytest.raises(DelegateUnavailableError, match=r"or a list of names .* got .onnxruntime.; for that delegate alone write"):
        InferenceSession(add_model(), delegates="onnxruntime")
    with pytest.raises(DelegateUnavailableError, match="bad delegates entry 3"):
        InferenceSession(add_model(), delegates=[3])
    with pytest.raises(DelegateUnavailableError, match="has no backend 'tpu' here; available: cpu"):
        InferenceSession(add_model(), delegates=[("onnxruntime", {"backend": "tpu"})])
    with pytest.raises(UnifiedError, match=r"delegate 'onnxruntime' has no option 'bogus'; its options are: backend, num_threads"):
        InferenceSession(add_model(), delegates=[("onnxruntime", {"bogus": 1})], options=SessionOptions(use_cache=False))
