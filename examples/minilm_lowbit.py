"""MiniLM with 4-bit weights: int4 and MXFP4 all-MiniLM-L6-v2 against fp32 (issue 14).

The demo's model (``examples/minilm_demo.py``: the same sentences, the same
ONNX export with mean pooling and L2 normalization, the same tokenization)
is quantized by the project's own quantizer,
``unified.quantize.quantize_weights(model, out, scheme="int4" | "mxfp4")``
(every MatMul weight, blocks of 32 along K; see docs/quantization.md). For
each scheme this prints:

* the plan's node split on the ``reference`` delegate (non-strict: what it
  does not claim falls back to ONNX Runtime);
* the cosine similarity of each sentence's embedding to the fp32 one
  (``unified.metrics.cosine_similarity``; fp32 run by ONNX Runtime);
* whether the demo's similarity matrix ranks the same pairs highest: each
  sentence's most similar other sentence, the top pair overall, and the whole
  order of the n(n-1)/2 pairs (Kendall's tau);
* ONNX Runtime: the int4 model runs on the ``onnxruntime`` delegate; the
  MXFP4 one does not load (ONNX Runtime's own message), so its weights are
  dequantized to float32 (:func:`dequantized_fp32`, ``onnx.reference``) to
  cross-check the reference delegate's numbers;
* the weight bytes of ``unified simulate`` (the CLI, and its Python API
  ``simulate_model``), fp32 vs 4-bit, the ratio, and the factor expected
  from the MatMul weight shapes (:func:`expected_weight_factor`).

Run: ``python examples/minilm_lowbit.py [--out DIR]`` (needs the ``demo``
and ``quantize`` extras). Not a timing benchmark.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np
import onnx
from minilm_demo import SENTENCES, SEQ, similarity_matrix
from onnx import numpy_helper

import unified
from unified.conformance import nets
from unified.metrics import cosine_similarity, max_abs_error, topk_agreement

SCHEMES = ("int4", "mxfp4")
BLOCK = 32
SCALE_BYTES = {"int4": 4, "mxfp4": 1}
"""Stored bytes of one block scale: float32 for int4, FLOAT8E8M0 for MXFP4."""


def expected_weight_factor(model: onnx.ModelProto, scheme: str, block_size: int = BLOCK) -> float:
    """fp32 bytes / 4-bit bytes of the 2-D MatMul weight initializers of ``model``.

    A weight ``W (K, N)`` takes ``4 K N`` bytes in fp32 and
    ``K N / 2 + ceil(K / block_size) N s`` bytes as 4-bit data with one scale
    of ``s`` bytes (:data:`SCALE_BYTES`) per block along K. For 32 weights:
    128 B -> 16 + 4 = 20 B (int4, 6.4x) or 16 + 1 = 17 B (MXFP4, 7.53x).
    """
    inits = {t.name: tuple(t.dims) for t in model.graph.initializer}
    shapes = [inits[n.input[1]] for n in model.graph.node
              if n.op_type == "MatMul" and len(inits.get(n.input[1], ())) == 2]
    fp32 = sum(4 * k * n for k, n in shapes)
    low = sum(k * n / 2 + math.ceil(k / block_size) * n * SCALE_BYTES[scheme] for k, n in shapes)
    return fp32 / low


def dequantized_fp32(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of ``model`` with each DequantizeLinear of initializers replaced
    by its float32 result (computed by ``onnx.reference``, independent of
    unified), so ONNX Runtime can run the same low-bit weights when it cannot
    load the DequantizeLinear itself (MXFP4)."""
    from onnx.reference import ReferenceEvaluator

    out = onnx.ModelProto()
    out.CopyFrom(model)
    g = out.graph
    inits = {t.name: t for t in g.initializer}
    dq = [n for n in g.node if n.op_type == "DequantizeLinear" and all(x in inits for x in n.input if x)]
    for n in dq:
        sub = onnx.helper.make_model(
            onnx.helper.make_graph([n], "dq", [], [onnx.helper.make_tensor_value_info(n.output[0], onnx.TensorProto.FLOAT, None)],
                                   initializer=[inits[x] for x in n.input if x]),
            opset_imports=list(out.opset_import), ir_version=out.ir_version)
        g.initializer.append(numpy_helper.from_array(ReferenceEvaluator(sub).run(None, {})[0], n.output[0]))
        g.node.remove(n)
    used = {x for n in g.node for x in n.input}
    keep = [t for t in g.initializer if t.name in used]
    del g.initializer[:]
    g.initializer.extend(keep)
    return out


def ranked_pairs(sim: np.ndarray) -> list[tuple[int, int]]:
    """The pairs ``(i, j)``, ``i < j``, of an (n, n) similarity matrix, most similar first."""
    n = sim.shape[0]
    return sorted(((i, j) for i in range(n) for j in range(i + 1, n)), key=lambda p: -float(sim[p]))


def ranking_agreement(sim: np.ndarray, ref: np.ndarray) -> dict:
    """How far the similarity matrix ``sim`` ranks sentence pairs as ``ref`` does.

    Returns:
        ``partners``: share of sentences whose most similar other sentence is
        the same (``unified.metrics.topk_agreement`` with the diagonal
        masked); ``top_pair``: the most similar pair is the same;
        ``same_order``: all n(n-1)/2 pairs in the same order;
        ``kendall_tau``: Kendall's tau-a between the pair similarities
        (Kendall, Biometrika 30, 1938), 1.0 for the same order.
    """
    off = ~np.eye(len(ref), dtype=bool)
    partners = topk_agreement(np.where(off, sim, -np.inf), np.where(off, ref, -np.inf), k=1)
    x, y = (m[np.triu_indices(len(ref), 1)] for m in (sim, ref))
    concordance = np.sign(x[:, None] - x[None, :]) * np.sign(y[:, None] - y[None, :])
    pairs, ref_pairs = ranked_pairs(sim), ranked_pairs(ref)
    return {
        "partners": partners,
        "top_pair": pairs[0] == ref_pairs[0],
        "same_order": pairs == ref_pairs,
        "kendall_tau": float(concordance.sum() / (len(x) * (len(x) - 1))),
    }


def reference_session(model: onnx.ModelProto) -> unified.InferenceSession:
    """A non-strict session on the ``reference`` delegate (fallback: ONNX Runtime), fallback warning silenced."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", unified.FallbackWarning)
        return unified.InferenceSession(model, delegates=["reference"])


def simulated_weight_bytes(path: Path, out_dir: Path) -> tuple[int, int]:
    """``weight_bytes`` of ``unified simulate`` (the CLI's JSON report, fp32
    compute on scalesim-32) and of its Python API ``simulate_model``."""
    from unified.backends.npu_sim.workload import simulate_model

    subprocess.run([sys.executable, "-m", "unified.cli", "simulate", str(path), "--dtype", "fp32", "--no-png",
                    "--out", str(out_dir)], check=True, capture_output=True, text=True)
    cli = json.loads((out_dir / f"{path.stem}.json").read_text())["totals"]["weight_bytes"]
    return cli, simulate_model(str(path), "scalesim-32", "fp32").totals()["weight_bytes"]


def onnxruntime_check(model: onnx.ModelProto, feed: dict, emb: np.ndarray, ref: np.ndarray) -> dict:
    """ONNX Runtime on the 4-bit model: its load error (or None); the
    ``onnxruntime`` delegate's embeddings where it loads, else ONNX Runtime's
    on :func:`dequantized_fp32`; their max abs difference to the reference
    delegate's ``emb`` and their lowest per-sentence cosine to fp32 ``ref``."""
    from unified.quantize import ort_failure

    why = ort_failure(model)
    runnable = model if why is None else dequantized_fp32(model)
    got = unified.InferenceSession(runnable, delegates=["onnxruntime"]).run(None, feed)[0]
    return {"error": why, "ran": "4-bit model" if why is None else "dequantized fp32 weights",
            "max_abs_vs_reference": max_abs_error(got, emb),
            "cosine_min": min(cosine_similarity(g, r) for g, r in zip(got, ref))}


def measure(scheme: str, fp32: onnx.ModelProto, feed: dict, ref: np.ndarray, out_dir: Path) -> dict:
    """Everything the report prints for one scheme (see the module docstring)."""
    from unified.quantize import quantize_weights

    path = out_dir / f"minilm_{scheme}.onnx"
    model = quantize_weights(fp32, path, scheme=scheme, block_size=BLOCK, check_ort=False)
    sess = reference_session(model)
    emb = sess.run(None, feed)[0]
    cli, api = simulated_weight_bytes(path, out_dir)
    return {
        "split": sess.plan.node_counts(),
        "cosine": [cosine_similarity(emb[i], ref[i]) for i in range(len(ref))],
        "ranking": ranking_agreement(similarity_matrix(emb), similarity_matrix(ref)),
        "pairs": ranked_pairs(similarity_matrix(emb)),
        "ort": onnxruntime_check(model, feed, emb, ref),
        "weight_bytes": cli,
        "weight_bytes_api": api,
        "expected_factor": expected_weight_factor(fp32, scheme),
    }


def fp32_baseline(out_dir: Path) -> tuple[onnx.ModelProto, dict, np.ndarray]:
    """The demo's fp32 model (batch of the demo's sentences, SEQ tokens),
    its feed, and its embeddings on ONNX Runtime (n, 384)."""
    st = nets.minilm_sentence_transformer()
    fp32 = nets.minilm(shape=(len(SENTENCES), SEQ))
    onnx.save(fp32, out_dir / "minilm_fp32.onnx")
    feed = nets.minilm_tokenize(SENTENCES, seq=SEQ, model=st)
    ref = unified.InferenceSession(fp32, delegates=["onnxruntime"]).run(None, feed)[0]
    return fp32, feed, ref


def report(results: dict, fp32_bytes: tuple[int, int], ref: np.ndarray) -> str:
    """The measured tables as text (Markdown-friendly)."""
    from tabulate import tabulate

    rows = [(f"[{i}] {s}", *(f"{r['cosine'][i]:.4f}" for r in results.values())) for i, s in enumerate(SENTENCES)]
    lines = ["cosine similarity to the fp32 embedding, per sentence (reference delegate)",
             tabulate(rows, ["sentence", *results], tablefmt="github", disable_numparse=True), ""]
    fp32_order = ranked_pairs(similarity_matrix(ref))
    lines.append(f"fp32 pairs, most similar first: {fp32_order}")
    lines += [f"{scheme} pairs{' ' * (4 - len(scheme))}, most similar first: {r['pairs']}" for scheme, r in results.items()]
    rows = []
    for scheme, r in results.items():
        k, o = r["ranking"], r["ort"]
        rows.append((scheme, ", ".join(f"{d} {c}" for d, c in sorted(r["split"].items())),
                     f"{k['partners']:.0%}", k["top_pair"], k["same_order"], f"{k['kendall_tau']:.3f}",
                     f"{r['weight_bytes']:,}", f"{fp32_bytes[0] / r['weight_bytes']:.4f}",
                     f"{r['expected_factor']:.4f}", f"{o['ran']}: {o['max_abs_vs_reference']:.1e}; cosine min {o['cosine_min']:.4f}"))
    head = ["scheme", "nodes", "same partner", "same top pair", "same order", "Kendall tau",
            "weight B", "fp32 / this", "expected", "ONNX Runtime ran (max abs vs reference; cosine to fp32)"]
    lines += [tabulate(rows, head, tablefmt="github", disable_numparse=True), "",
              f"fp32 weight bytes: {fp32_bytes[0]:,} (unified simulate; Python API {fp32_bytes[1]:,})"]
    for scheme, r in results.items():
        lines.append(f"{scheme}: CLI {r['weight_bytes']:,} B, Python API {r['weight_bytes_api']:,} B; "
                     f"ONNX Runtime: {r['ort']['error'] or 'loads and runs it'}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="folder for the 4-bit models and simulate reports (default: temporary)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        out_dir = args.out or Path(tmp)
        out_dir.mkdir(parents=True, exist_ok=True)
        fp32, feed, ref = fp32_baseline(out_dir)
        fp32_bytes = simulated_weight_bytes(out_dir / "minilm_fp32.onnx", out_dir)
        results = {s: measure(s, fp32, feed, ref, out_dir) for s in SCHEMES}
        print(report(results, fp32_bytes, ref))
    ok = all(r["ranking"]["partners"] == 1.0 and r["weight_bytes"] == r["weight_bytes_api"] for r in results.values())
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
