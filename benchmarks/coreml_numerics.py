"""Core ML numerics without a Mac: each model compiled by coreml, evaluated by mil-numpy, against ONNX Runtime.

For every light architecture of the onnx wheel (``unified.conformance.zoo``;
weights re-drawn with ``redraw_weights(seed=0, calibrate=True)``: random
weights, BatchNormalization statistics measured on ``random_inputs(seed=1)``
as a trained net's are, so activations stay in fp16's range; inputs
``random_inputs(seed=0)``) and all-MiniLM-L6-v2 (real weights, static
``(6, 32)`` export of ``unified.conformance.nets.minilm``, the demo's
sentences): an ``InferenceSession`` with
``delegates=[("coreml", {"backend": "mil-numpy"})]`` (fp16 ML Program,
evaluated op by op in NumPy; nodes coreml declines fall back to ONNX
Runtime and are counted) against plain ONNX Runtime (CPU EP), fp32.

Per model: nodes on coreml / total, graph depth (nodes on the longest path),
max abs error, max abs error / max |ref|, max rel error, cosine, the fp16
budget (``unified.conformance.compare.fp16_budget(depth, scale=max|ref|)``)
and whether every element is within it. This is a numerics check, not a
timing benchmark.

Usage:
    .venv/bin/python benchmarks/coreml_numerics.py [--models resnet50 minilm ...] [--precision fp16|fp32]
        [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402
from tabulate import tabulate  # noqa: E402

import unified  # noqa: E402
from unified import metrics  # noqa: E402
from unified.conformance import zoo  # noqa: E402
from unified.conformance.compare import fp16_budget  # noqa: E402
from unified.conformance.execute import graph_depth  # noqa: E402
from unified.graph import Graph  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
from minilm_demo import SENTENCES, SEQ  # noqa: E402  (the demo's sentences and static sequence length)

MODELS = (*zoo.LIGHT_MODELS, "minilm")


def load(name: str):
    """``(model, feed)`` of one model."""
    import onnx

    if name == "minilm":
        from unified.conformance import nets

        st = nets.minilm_sentence_transformer()
        return nets.minilm(shape=(len(SENTENCES), SEQ)), nets.minilm_tokenize(SENTENCES, seq=SEQ, model=st)
    # calibrate: without it ResNet-50 and ShuffleNet overflow fp16 (activations 2.8e5 and 4.1e6)
    model = zoo.redraw_weights(onnx.load(str(zoo.light_model_path(name))), seed=0, calibrate=True)
    return model, zoo.random_inputs(model, seed=0)


def check(name: str, precision: str) -> dict:
    """The row of one model (see the module docstring)."""
    import onnxruntime as ort

    model, feed = load(name)
    ref_session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    refs = ref_session.run(None, feed)
    start = time.perf_counter()
    session = unified.InferenceSession(
        model, [("coreml", {"backend": "mil-numpy", "compute_precision": precision})],
        unified.SessionOptions(use_cache=False),
    )
    outs = session.run(None, feed)
    seconds = time.perf_counter() - start
    on_coreml = sum(len(p.nodes) for p in session.plan.partitions if p.delegate == "coreml")
    total = sum(len(p.nodes) for p in session.plan.partitions)
    depth = graph_depth(Graph(model))
    row = {"model": name, "coreml_nodes": f"{on_coreml}/{total}", "depth": depth, "seconds": round(seconds, 1)}
    worst = None
    for ref, out in zip(refs, outs):
        ref64, out64 = np.asarray(ref, np.float64), np.asarray(out, np.float64)
        scale = float(np.abs(ref64).max()) or 1.0
        tol = fp16_budget(depth, scale)
        stats = metrics.summary(out64, ref64)
        stats["rel_to_max"] = stats["max_abs"] / scale
        stats["within"] = bool(np.allclose(out64, ref64, atol=tol.atol, rtol=tol.rtol))
        stats["budget_atol"], stats["budget_rtol"] = tol.atol, tol.rtol
        if worst is None or stats["rel_to_max"] > worst["rel_to_max"]:
            worst = stats
    row.update(worst)
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*", default=list(MODELS), help=f"default: {' '.join(MODELS)}")
    parser.add_argument("--precision", default="fp16", choices=("fp16", "fp32"), help="ML Program precision")
    parser.add_argument("--json", help="also write the rows here")
    args = parser.parse_args(argv)
    rows = []
    for name in args.models:
        print(f"== {name}", file=sys.stderr, flush=True)
        try:
            rows.append(check(name, args.precision))
        except unified.UnifiedError as exc:
            rows.append({"model": name, "error": str(exc).splitlines()[0][:200]})
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    cols = ["model", "coreml_nodes", "depth", "max_abs", "rel_to_max", "max_rel", "cosine", "budget_atol",
            "budget_rtol", "within"]
    table = [[r.get(c, r.get("error", "-") if c == "coreml_nodes" else "-") for c in cols] for r in rows]
    print(tabulate(table, cols, tablefmt="github", floatfmt=".3g"))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 0 if all(r.get("within") for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
