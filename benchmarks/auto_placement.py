"""``delegates="auto"`` on the real-model corpus and the re-drawn light models.

For each model:

1. ``unified.tune`` with a fresh compile cache (``tuning_seconds`` from
   ``--seconds``, default the SessionOptions default, 60 s): the candidate
   table (each candidate's median, error against ONNX Runtime, gate), the
   choice, the tuning wall time, whether the budget ran out.
2. A check run: the auto session (``InferenceSession(model, "auto")``, which
   must reuse the cached decision), every executing delegate alone (with the
   fallback for what it declines; compiles come from the cache) and a plain
   ``onnxruntime.InferenceSession`` (CPU EP, all optimizations, one thread per
   physical core), **each in its own process** (at sub-2 ms the per-call
   figure of a session depends on what else lives in its process: two
   identical sessions in one process differed by up to 5 % with the order
   they were created in), run the same input in rounds: each session a
   block of consecutive runs per round (at least 4 runs and 20 ms; the
   first run of a block, which wakes that process's threads, not counted),
   in a seeded random order each round, ``--runs`` rounds after warm-up
   (more for sub-millisecond models: until the fastest session has run
   1 s); each worker times its own runs. Then the same again with a fresh
   set of processes (``--replicas``, default 2): a process's memory layout
   moves its figure by up to ~10 % at sub-2 ms (the same plan in two
   processes: silero VAD 0.42 vs 0.37 ms). The figures are medians over the
   pooled runs. From them: auto / fastest single delegate, and auto / ONNX
   Runtime.

Light models: ``light_*`` from the onnx wheel, weights re-drawn (seed 0,
``unified.conformance.zoo.redraw_weights``); real models: the first input
variant of each ``unified.conformance.real_models`` entry.

Usage:
    .venv/bin/python benchmarks/auto_placement.py [--models light_resnet50 nudenet ...]
        [--runs 10] [--replicas 2] [--seconds 60] [--json OUT] [--markdown]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import multiprocessing
import os
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


def _serve(conn, kind: str, model_path: str, feeds: dict, cache: str, seconds: float | None) -> None:
    """Worker process: build one session (``kind``: "auto", a delegate name,
    or "ort" for the plain ONNX Runtime session), reply with its plan, then
    answer each ``n`` with the wall seconds of ``n`` consecutive runs; ``None`` stops."""
    warnings.simplefilter("ignore")
    try:
        import unified
        from unified.host import physical_cores

        model = onnx.load(model_path)
        info: dict = {}
        if kind == "ort":
            session = ort_session(model, physical_cores())
            run = lambda: session.run(None, feeds)  # noqa: E731
        else:
            opts = unified.SessionOptions(cache_dir=cache, tuning_inputs=feeds)
            if seconds is not None:
                opts.tuning_seconds = seconds
            start = time.perf_counter()
            session = unified.InferenceSession(model, "auto" if kind == "auto" else [kind], opts)
            run = lambda: session.run(None, feeds)  # noqa: E731
            info = {"plan": session.plan.node_counts(), "build_s": time.perf_counter() - start,
                    "from_cache": kind == "auto" and session.plan.tuning.from_cache}
        conn.send(("ready", info))
    except Exception as exc:  # the parent records it and goes on without this session
        conn.send(("error", f"{type(exc).__name__}: {str(exc).splitlines()[0][:150]}"))
        return
    while (n := conn.recv()) is not None:
        times = []
        for _ in range(n):
            start = time.perf_counter()
            run()
            times.append(time.perf_counter() - start)
        conn.send(times)


class Worker:
    """One session in its own (spawned) process; ``worker(n)`` -> seconds of ``n`` runs."""

    def __init__(self, kind: str, model_path: str, feeds: dict, cache: str, seconds: float | None):
        ctx = multiprocessing.get_context("spawn")
        self.kind = kind
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_serve, args=(child, kind, model_path, feeds, cache, seconds), daemon=True)
        self.proc.start()
        child.close()

    def ready(self) -> dict:
        """The session's plan info; raises RuntimeError if the worker could not build it."""
        status, info = self.conn.recv()
        if status == "error":
            raise RuntimeError(info)
        return info

    def __call__(self, n: int) -> list[float]:
        self.conn.send(n)
        return self.conn.recv()

    def close(self) -> None:
        try:
            self.conn.send(None)
        except OSError:
            pass
        self.proc.join(timeout=30)
        if self.proc.is_alive():
            self.proc.kill()


def round_robin(runs: dict, rounds: int, block: int = 4, warmup: int = 2, min_seconds: float = 1.0,
                block_seconds: float = 0.02) -> dict[str, list[float]]:
    """Seconds of each run of each callable (``fn(n)`` -> the seconds of
    ``n`` consecutive runs, here a session in its own process): at least
    ``rounds`` rounds, each running every callable for a block of
    consecutive runs (at least ``block`` runs and ``block_seconds``), in a
    fresh seeded random order each round so that slow drift of the machine
    reaches every session alike. The first run of each block is not counted:
    it pays for waking that process's threads after another process ran,
    which a session used alone does not (silero VAD op15's first run of a
    block: 0.7-0.9 ms, the rest 0.2-0.3 ms). Sub-millisecond models get more
    rounds, until the fastest callable has run for ``min_seconds`` (at most
    2,000 rounds): a few dozen runs of 0.3 ms are noise."""
    warm = {k: fn(warmup) for k, fn in runs.items()}
    fastest = max(min(min(v) for v in warm.values()), 1e-6)
    block = max(block, math.ceil(block_seconds / fastest))
    rounds = max(rounds, min(2000, math.ceil(min_seconds / (block * fastest))))
    times = {k: [] for k in runs}
    order, rng = list(runs), random.Random(0)
    for _ in range(rounds):
        rng.shuffle(order)
        for k in order:
            times[k].extend(runs[k](block + 1)[1:])
    return times


def _check_run(name, kinds, model_path, feeds, cache, seconds, rounds, times) -> dict:
    """One set of worker processes, one per session kind, timed by
    :func:`round_robin`; their run times are appended to ``times``. Returns
    the auto worker's info (which must come from the cached decision)."""
    workers = {k: Worker(k, model_path, feeds, cache, seconds) for k in kinds}
    try:
        auto = workers["auto"].ready()
        assert auto["from_cache"], "the second session measured again"
        for k, w in list(workers.items()):
            if k != "auto":
                try:
                    w.ready()
                except RuntimeError as exc:
                    print(f"# {name}: {k} alone: {exc}", file=sys.stderr)
                    w.close()
                    del workers[k]
        for k, v in round_robin(workers, rounds).items():
            times.setdefault(k, []).extend(v)
    finally:
        for w in workers.values():
            w.close()
    return auto


def measure(name: str, rounds: int, seconds: float | None, replicas: int = 2) -> dict:
    """Tune one model, then time auto against each delegate alone and ORT."""
    import unified
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
        del tuned
        model_path = os.path.join(cache, "model.onnx")
        onnx.save(model, model_path)
        times: dict[str, list[float]] = {}
        for _ in range(replicas):
            auto = _check_run(name, ["auto", *singles, "ort"], model_path, feeds, cache, seconds, rounds, times)
        med = {k: statistics.median(v) for k, v in times.items()}
    fastest = min((k for k in med if k in singles), key=med.get)
    return {
        "model": name,
        "candidates": [dataclasses.asdict(r) for r in t.candidates],
        "choice": t.chosen,
        "choice_plan": auto["plan"],
        "tuning_s": t.seconds,
        "tune_wall_s": wall,
        "reuse_s": auto["build_s"],
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
    p.add_argument("--runs", type=int, default=10, help="rounds of the check run (a block of >= 4 runs of each per round)")
    p.add_argument("--replicas", type=int, default=2,
                   help="sets of worker processes, one after the other, whose times are pooled (default 2)")
    p.add_argument("--seconds", type=float, default=None, help="tuning budget (default: SessionOptions' 60 s)")
    p.add_argument("--json", help="write the rows as JSON here")
    p.add_argument("--markdown", action="store_true")
    args = p.parse_args()
    import onnxruntime

    print(f"# host: {platform.processor() or platform.machine()}, onnxruntime {onnxruntime.__version__}, "
          f"at least {args.runs} rounds, each session in its own process", flush=True)
    rows = []
    for name in args.models:
        try:
            rows.append(measure(name, args.runs, args.seconds, args.replicas))
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
