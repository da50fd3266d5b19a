"""Weight-only int4 / MXFP4 MiniLM on the reference delegate: accuracy and simulated weight traffic.

A minimal private converter (:func:`quantize_matmul_weights`) replaces every
MatMul's 2-D float32 initializer ``W (K, N)`` by ``DequantizeLinear`` of a
low-bit copy, blocks of 32 along K (axis 0):

* ``int4``: symmetric, ``s = max|W_block| / 7`` (float32, one per block and
  column), ``q = clip(rint(W / s), -8, 7)``; DequantizeLinear-21 ``block_size=32``.
* ``mxfp4`` (OCP Microscaling v1.0, section 6.3): shared scale
  ``2**(floor(log2(max|W_block|)) - 2)`` stored as FLOAT8E8M0 (E2M1's largest
  exponent is 2), elements ``W / scale`` rounded to FLOAT4E2M1 (nearest even,
  saturating at 6); DequantizeLinear-23+ ``output_dtype=FLOAT``, opset 25.

Run ``python benchmarks/lowbit_weights.py``: prints, per scheme, the node
split between the reference delegate and the fallback, the cosine similarity
of each demo sentence's embedding to fp32, and ``unified simulate``'s weight
bytes and DRAM traffic. Not a timing benchmark.
"""

from __future__ import annotations

import sys

import ml_dtypes
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

BLOCK = 32


def _int4(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    k, n = w.shape
    blocks = w.reshape(k // BLOCK, BLOCK, n)
    s = (np.abs(blocks).max(axis=1) / 7).astype(np.float32)
    s[s == 0] = 1.0
    q = np.clip(np.rint(blocks / s[:, None, :]), -8, 7).reshape(k, n)
    return q.astype(ml_dtypes.int4), s


def _mxfp4(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    k, n = w.shape
    blocks = w.reshape(k // BLOCK, BLOCK, n).astype(np.float32)
    amax = np.abs(blocks).max(axis=1)
    e = np.where(amax > 0, np.floor(np.log2(np.where(amax > 0, amax, 1.0))) - 2, 0.0)
    scale = np.exp2(e).astype(np.float32)
    q = (blocks / scale[:, None, :]).reshape(k, n).astype(ml_dtypes.float4_e2m1fn)
    return q, scale.astype(ml_dtypes.float8_e8m0fnu)


def _copy(model: onnx.ModelProto):
    """(a copy of the model, its graph, initializer name -> TensorProto)."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    return out, out.graph, {t.name: t for t in out.graph.initializer}


def quantize_matmul_weights(model: onnx.ModelProto, scheme: str) -> onnx.ModelProto:
    """A copy of ``model`` with every MatMul's 2-D float32 initializer (K a
    multiple of 32) stored as ``scheme`` (``"int4"`` or ``"mxfp4"``) and
    dequantized by a DequantizeLinear node (blocks of 32 along K)."""
    out, g, inits = _copy(model)
    nodes = []
    for n in g.node:
        w = inits.get(n.input[1]) if n.op_type == "MatMul" and len(n.input) > 1 else None
        arr = numpy_helper.to_array(w) if w is not None else None
        if arr is None or arr.ndim != 2 or arr.dtype != np.float32 or arr.shape[0] % BLOCK:
            nodes.append(n)
            continue
        q, s = (_int4 if scheme == "int4" else _mxfp4)(arr)
        name = w.name
        g.initializer.remove(w)
        del inits[name]
        g.initializer.extend([numpy_helper.from_array(q, f"{name}_q"), numpy_helper.from_array(s, f"{name}_scale")])
        extra = {"output_dtype": TensorProto.FLOAT} if scheme == "mxfp4" else {}
        nodes.append(helper.make_node("DequantizeLinear", [f"{name}_q", f"{name}_scale"], [name], axis=0,
                                      block_size=BLOCK, **extra))
        nodes.append(n)
    del g.node[:]
    g.node.extend(nodes)
    need = 25 if scheme == "mxfp4" else 21
    for o in out.opset_import:
        if o.domain in ("", "ai.onnx"):
            o.version = max(o.version, need)
    return out


def dequantized_fp32(model: onnx.ModelProto) -> onnx.ModelProto:
    """The same low-bit weights as plain float32 initializers (each
    DequantizeLinear of a constant evaluated here with ``onnx.reference``),
    so ONNX Runtime, which has no FLOAT8E8M0 scales, can run the MXFP4 model."""
    from onnx.reference import ReferenceEvaluator

    out, g, inits = _copy(model)
    keep = []
    for n in g.node:
        if n.op_type == "DequantizeLinear" and all(x in inits for x in n.input if x):
            sub = helper.make_model(
                helper.make_graph([n], "dq", [], [helper.make_tensor_value_info(n.output[0], TensorProto.FLOAT, None)],
                                  initializer=[inits[x] for x in n.input if x]),
                opset_imports=list(out.opset_import),
            )
            g.initializer.append(numpy_helper.from_array(ReferenceEvaluator(sub).run(None, {})[0], n.output[0]))
        else:
            keep.append(n)
    del g.node[:]
    g.node.extend(keep)
    return out


def main() -> int:
    from unified import InferenceSession, SessionOptions
    from unified.backends.npu_sim.workload import simulate_model
    from unified.conformance import nets
    from unified.metrics import cosine_similarity

    sys.path.insert(0, "examples")
    from minilm_demo import SENTENCES, SEQ

    st = nets.minilm_sentence_transformer()
    fp32 = nets.minilm(shape=(len(SENTENCES), SEQ))
    feed = nets.minilm_tokenize(SENTENCES, seq=SEQ, model=st)
    ref = InferenceSession(fp32, delegates=["onnxruntime"]).run(None, feed)[0]
    base = simulate_model(fp32, "scalesim-32", "fp32").totals()
    print(f"fp32: weights {base['weight_bytes']:,} B, DRAM {base['dram_read_bytes'] + base['dram_write_bytes']:,} B")
    for scheme in ("int4", "mxfp4"):
        m = quantize_matmul_weights(fp32, scheme)
        sess = InferenceSession(m, delegates=["reference"], options=SessionOptions(enable_profiling=True))
        split = {}
        for p in sess.plan.partitions:
            split[p.delegate] = split.get(p.delegate, 0) + len(p.nodes)
        emb = sess.run(None, feed)[0]
        cos = [cosine_similarity(emb[i], ref[i]) for i in range(len(SENTENCES))]
        same = InferenceSession(dequantized_fp32(m), delegates=["onnxruntime"]).run(None, feed)[0]
        err = float(np.abs(emb - same).max())
        t = simulate_model(m, "scalesim-32", "fp32").totals()
        print(f"{scheme}: nodes {split}; cosine to fp32 per sentence {[round(c, 5) for c in cos]} (min {min(cos):.5f})")
        print(f"  vs ONNX Runtime on the same dequantized weights: max abs error {err:.2e}")
        print(f"  weights {t['weight_bytes']:,} B ({base['weight_bytes'] / t['weight_bytes']:.3f}x less), "
              f"DRAM {t['dram_read_bytes'] + t['dram_write_bytes']:,} B")
    return 0


if __name__ == "__main__":
    sys.exit(main())
