"""The compile cache: content-addressed, atomic, and never uses a corrupt entry."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from onnx import TensorProto, helper

import unified
from unified import InferenceSession, SessionOptions
from unified.cache import CacheWarning, CompileCache

from .toy_delegate import ToyDelegate, ToyExecutable, ToyPlugin


class CachingToy(ToyDelegate):
    """Toy delegate whose artifact is the partition bytes; counts compiles and loads."""

    cacheable = True

    def __init__(self):
        super().__init__("caching_toy")
        self.loads = 0

    def compile(self, partition, options):
        exe = super().compile(partition, options)
        exe.serialize = lambda: partition.SerializeToString()
        return exe

    def load(self, artifact, partition, options):
        import onnx

        self.loads += 1
        model = onnx.load_from_string(artifact)
        return ToyExecutable(model)


def model(scale: float = 2.0):
    k = helper.make_tensor("k", TensorProto.FLOAT, [3], [scale] * 3)
    g = helper.make_graph(
        [helper.make_node("Mul", ["x", "k"], ["m"]), helper.make_node("Relu", ["m"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3])],
        initializer=[k],
    )
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=10)


def session(m, delegate, cache_dir):
    return InferenceSession(m, [delegate.name], SessionOptions(plugins=[ToyPlugin(delegate)], cache_dir=cache_dir))


X = np.array([-1.0, 0.5, 2.0], np.float32)


def test_second_session_loads_from_cache(tmp_path):
    d = CachingToy()
    first = session(model(), d, tmp_path)
    assert (len(d.compiled), d.loads) == (1, 0) and not first.profile[0].cache_hit
    second = session(model(), d, tmp_path)
    assert (len(d.compiled), d.loads) == (1, 1) and second.profile[0].cache_hit
    np.testing.assert_array_equal(second.run(None, {"x": X})[0], np.maximum(X * 2, 0))


def test_key_changes_with_weights_and_options(tmp_path):
    d = CachingToy()
    session(model(2.0), d, tmp_path)
    session(model(3.0), d, tmp_path)
    assert len(d.compiled) == 2
    base = CompileCache.key(b"m", "d", "1", "cpu", {})
    assert base != CompileCache.key(b"m", "d", "2", "cpu", {})
    assert base != CompileCache.key(b"m", "d", "1", "gpu", {})
    assert base != CompileCache.key(b"m", "d", "1", "cpu", {"num_threads": 2})
    assert base == CompileCache.key(b"m", "d", "1", "cpu", {})


@pytest.mark.parametrize("damage", ["flip_payload_byte", "truncate", "garbage_header"])
def test_corrupt_entry_is_discarded_and_recompiled(tmp_path, damage):
    d = CachingToy()
    session(model(), d, tmp_path)
    [entry] = list(tmp_path.rglob("*.entry"))
    blob = bytearray(entry.read_bytes())
    if damage == "flip_payload_byte":
        blob[-5] ^= 0xFF
    elif damage == "truncate":
        blob = blob[: len(blob) - 10]
    else:
        blob[:5] = b"xxxxx"
    entry.write_bytes(bytes(blob))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        again = session(model(), d, tmp_path)
    assert any(issubclass(w.category, CacheWarning) and "corrupt" in str(w.message) for w in caught)
    assert (len(d.compiled), d.loads) == (2, 0) and not again.profile[0].cache_hit
    np.testing.assert_array_equal(again.run(None, {"x": X})[0], np.maximum(X * 2, 0))
    # the recompiled entry replaced the corrupt one and verifies
    cache = CompileCache(tmp_path)
    [entry] = list(tmp_path.rglob("*.entry"))
    assert cache.get(entry.stem) is not None


def test_put_is_atomic_and_leaves_no_temporaries(tmp_path):
    cache = CompileCache(tmp_path)
    key = "ab" * 32
    cache.put(key, b"payload")
    assert cache.get(key) == b"payload"
    assert [p.name for p in tmp_path.rglob("*") if p.is_file()] == [f"{key}.entry"]


def test_unwritable_cache_dir_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(unified.CacheError, match="cannot write compile cache entry"):
        CompileCache(blocker).put("cd" * 32, b"x")
