"""Batch-inference throughput over Ray Data: MiniLM embeddings with 1 and 2 actors.

Embeds ``--sentences`` sentences with examples/ray_embed.py's pipeline
(tokenize, then ``BatchInference`` in an ``ActorPoolStrategy(size=N)`` pool), once per
actor count, and a plain in-process session on the same batches as the
baseline. Each Ray time includes the actors' start (session creation) as a
pipeline run does; a warm-up run of each count first is not timed.
Prints sentences/s. Run it on a quiet machine with >= 4 cores.

Usage::

    .venv/bin/python benchmarks/ray_batch.py [--sentences 4096] [--batch-size 128] [--actors 1,2] [--threads 1]
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

EXAMPLE = Path(__file__).parents[1] / "examples" / "ray_embed.py"


def _example():
    spec = importlib.util.spec_from_file_location("ray_embed", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _pipeline(ex, texts, model, actors: int, args) -> float:
    """Seconds to embed ``texts`` with ``actors`` inference actors (materialized)."""
    t = time.perf_counter()
    count = ex.embed_dataset(texts, model, actors=actors, batch_size=args.batch_size,
                             delegate=args.delegate, threads=args.threads).materialize().count()
    seconds = time.perf_counter() - t
    if count != len(texts):
        raise RuntimeError(f"the pipeline returned {count} rows for {len(texts)} sentences")
    return seconds


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sentences", type=int, default=4096)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--actors", default="1,2", help="comma-separated actor counts")
    ap.add_argument("--delegate", default="onnxruntime")
    ap.add_argument("--threads", type=int, default=None,
                    help="the delegate's num_threads in each actor and the plain session (default: one per core)")
    ap.add_argument("--no-warmup", action="store_true", help="time the first run of each count too")
    args = ap.parse_args(argv)

    import ray

    import unified

    ex = _example()
    texts = ex.sentences(args.sentences)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        model = ex.model_path(tmp)
        spec = (args.delegate, {"num_threads": args.threads}) if args.threads else args.delegate
        session = unified.InferenceSession(str(model), delegates=[spec])
        tok = ex.Tokenize()
        batches = [tok({"text": np.asarray(texts[i:i + args.batch_size], dtype=object)})
                   for i in range(0, len(texts), args.batch_size)]
        names = ("input_ids", "attention_mask", "token_type_ids")
        t = time.perf_counter()
        for b in batches:
            session.run(None, {k: b[k] for k in names})
        rows.append(("plain session (tokenized beforehand)", time.perf_counter() - t))
        ray.init(logging_level=logging.ERROR, log_to_driver=False, include_dashboard=False)
        try:
            ray.data.DataContext.get_current().enable_progress_bars = False
            for n in (int(a) for a in args.actors.split(",")):
                if not args.no_warmup:
                    _pipeline(ex, texts, model, n, args)
                rows.append((f"Ray Data, {n} actor(s) (with tokenizing)", _pipeline(ex, texts, model, n, args)))
        finally:
            ray.shutdown()
    print(f"{len(texts)} sentences, batch {args.batch_size}, delegate {args.delegate}, "
          f"threads {args.threads or 'default'}\n")
    print("| run | s | sentences/s |\n|---|---|---|")
    for name, s in rows:
        print(f"| {name} | {s:.2f} | {len(texts) / s:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
