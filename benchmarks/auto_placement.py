"""``delegates="auto"`` on the real-model corpus and the re-drawn light models.

For each model, in one process:

1. ``unified.tune`` with a fresh compile cache (``tuning_seconds`` from
   ``--seconds``, default the SessionOptions default, 60 s): the candidate
   table (each candidate's median, error against ONNX Runtime, gate), the
   choice, the tuning wall time, whether the budget ran out.
2. A check run: the auto session (``InferenceSession(model, "auto")``, which
   must reuse the cached decision), every executing delegate alone (with the
   fallback for what it declines; compiles come from the cache) and a plain
   ``onnxruntime.InferenceSession`` (CPU EP, all optimizations, one thread per
   physical core) run the same input in rounds, four consecutive runs of
   each per round (as ``unified.tune`` measures), in a seeded random order
   each round, ``--runs`` rounds after warm-up (more for sub-millisecond
   models: until the fastest session has run 1 s); the figures are medians. From them: auto /
   fastest single delegate, and auto / ONNX Runtime.

Light models: ``light_*`` from the onnx wheel, weights re-drawn (seed 0,
``unified.conformance.zoo.redraw_weights``); real models: the first input
variant of each ``unified.conformance.real_models`` entry.

Usage:
    .venv/bin/python benchmarks/auto_placement.py [--models light_resnet50 nudenet ...]
        [--runs 10] [--seconds 60] [--json OUT] [--markdown]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import random
import platform
import statistics
import sys
import tempfile
import time
import warnings

import onnx

from _versus_ort import ort_session

LIGHT = ["light_resnet50", "light_squeezenet", "light_densenet121", "light_inception_v1", "light_inception_v2",
         "light_shufflenet", "light_vgg19", "light_bvlc_alexnet", "light_zfnet512"]


def load(name: str):
    """(model, feeds) of a light model (re-drawn) or a real model (first variant)."""
    from unified.conformance import real_models as rm, zoo

    if name.startswith("light_"):
        model = zoo.redraw_weights(onnx.load(zoo.light_model_path(name.removeprefix("light_"))), seed=0)
        return model, zoo.random_inputs(model, seed=0)
    return onnx.load(str(rm.fetch(name))), rm.inputs(name, rm.variants(name)[0])


def round_robin(runs: dict, rounds: int, block: int = 4, warmup: int = 2, min_seconds: float = 1.0) -> dict[str, float]:
    """Median seconds of each zero-argument callable: at least ``rounds``
    rounds, each running every callable ``block`` times in a row (as
    ``unified.tune`` measures: a run right after another runtime's is slowed
    by its spinning threads), in a fresh seeded random order each round so no
    session always follows the same neighbour. Sub-millisecond models get more
    rounds, until the fastest callable has run for ``min_seconds`` (at most
    2,000 rounds): a few dozen runs of 0.3 ms are noise."""
    warm = {k: [] for k in runs}
    for _ in range(warmup):
        for k, fn in runs.items():
            start = time.perf_counter()
            fn()
            warm[k].append(time.perf_counter() - start)
    fastest = min(min(v) for v in warm.values())
    rounds = max(rounds, min(2000, math.ceil(min_seconds / (block * max(fastest, 1e-6)))))
    times = {k: [] for k in runs}
    order, rng = list(runs), random.Random(0)
    for _ in range(rounds):
        rng.shuffle(order)
        for k in order:
            fn = runs[k]
            for _ in range(block):
                start = time.perf_counter()
                fn()
                times[k].append(time.perf_counter() - start)
    return {k: statistics.median(v) for k, v in times.items()}


def measure(name: str, rounds: int, seconds: float | None) -> dict:
    """Tune one model, then time auto against each delegate alone and ORT."""
    import unified
    from unified.host import physical_cores
    from unified.tune import tune

    model, feeds = load(name)
    singles = [n for n in unified.registry().default_order() if n != "coreml"]
    with tempfile.TemporaryDirectory(prefix="unified-auto-") as cache, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        opts = unified.SessionOptions(cache_dir=cache, tuning_inputs=feeds)
        if seconds is not None:
            opts.tuning_seconds = seconds
        start = time.perf_counter()
        tuned = tune(model, opts)
        wall = time.perf_counter() - start
        t = tuned.plan.tuning
        start = time.perf_counter()
        auto = unified.InferenceSession(model, "auto", opts)
        reuse_s = time.perf_counter() - start
        assert auto.plan.tuning.from_cache, "the second session measured again"
        sessions = {"auto": auto}
        for d in singles:
            try:
                sessions[d] = unified.InferenceSession(model, [d], opts)
            except unified.UnifiedError as exc:
                print(f"# {name}: {d} alone: {exc}".splitlines()[0], file=sys.stderr)
        ort = ort_session(model, physical_cores())
        runs = {k: (lambda s=s: s.run(None, feeds)) for k, s in sessions.items()}
        runs["ort"] = lambda: ort.run(None, feeds)
        med = round_robin(runs, rounds)
    fastest = min((k for k in med if k in singles), key=med.get)
    return {
        "model": name,
        "candidates": [dataclasses.asdict(r) for r in t.candidates],
        "choice": t.chosen,
        "choice_plan": auto.plan.node_counts(),
        "tuning_s": t.seconds,
        "tune_wall_s": wall,
        "reuse_s": reuse_s,
        "budget_exhausted": t.budget_exhausted,
        "medians_ms": {k: v * 1e3 for k, v in med.items()},
        "fastest_single": fastest,
        "auto_vs_fastest": med["auto"] / med[fastest],
        "auto_vs_ort": med["auto"] / med["ort"],
    }


def _cand_text(c: dict) -> str:
    ms = "—" if c.get("median_ms") is None else f"{c['median_ms']:.1f}"
    mark = "" if c.get("passed") else " ✗gate" if c.get("median_ms") is not None else ""
    if c.get("note", "").startswith("same plan as"):
        return f"{c['name']} = {c['note'].removeprefix('same plan as ')}"
    return f"{c['name']} {ms}{mark}"


def markdown(rows: list[dict]) -> str:
    out = ["| model | candidates: median ms (✗gate = failed the accuracy gate) | choice | tuning s | "
           "auto ms | fastest single delegate ms | auto / fastest | ORT ms | auto / ORT |",
           "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "error" in r:
            out.append(f"| {r['model']} | {r['error']} | | | | | | | |")
            continue
        cands = "; ".join(_cand_text(c) for c in r["candidates"] if c["name"] != "reference")
        m = r["medians_ms"]
        budget = " (budget ran out)" if r["budget_exhausted"] else ""
        out.append(f"| {r['model']} | {cands} | {r['choice']} | {r['tuning_s']:.0f}{budget} | {m['auto']:.2f} | "
                   f"{r['fastest_single']} {m[r['fastest_single']]:.2f} | {r['auto_vs_fastest']:.2f} | "
                   f"{m['ort']:.2f} | {r['auto_vs_ort']:.2f} |")
    return "\n".join(out)


def main() -> None:
    from unified.conformance import real_models as rm

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=LIGHT + list(rm.CORPUS))
    p.add_argument("--runs", type=int, default=10, help="rounds of the check run (4 runs of each per round)")
    p.add_argument("--seconds", type=float, default=None, help="tuning budget (default: SessionOptions' 60 s)")
    p.add_argument("--json", help="write the rows as JSON here")
    p.add_argument("--markdown", action="store_true")
    args = p.parse_args()
    import onnxruntime

    print(f"# host: {platform.processor() or platform.machine()}, onnxruntime {onnxruntime.__version__}, "
          f"{args.runs} rounds of 4 runs each", flush=True)
    rows = []
    for name in args.models:
        try:
            rows.append(measure(name, args.runs, args.seconds))
        except Exception as exc:  # a benchmark records the failure and goes on
            rows.append({"model": name, "error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:150]}"})
        print(json.dumps(rows[-1], default=str) if not args.markdown else f"# done {name}", flush=True)
        if args.json:
            with open(args.json, "w") as f:
                json.dump(rows, f, indent=1, default=str)
    if args.markdown:
        print(markdown(rows))


if __name__ == "__main__":
    main()
