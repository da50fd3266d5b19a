"""``unified.debug.compare`` on every model, each boundary figure checked against a direct ONNX Runtime run.

Issue 13's "Done when": ``compare`` on the re-drawn light models and the
real-model corpus prints the boundary table for tflite, executorch and
reference, and its figures agree with a direct ORT run of the same prefix
subgraph. For each model (light models: ``zoo.redraw_weights(seed=0)`` and
``zoo.random_inputs(seed=0)``; real models: ``real_models.fetch`` and the
first input variant of ``real_models.inputs``, whose shapes fix the symbolic
dims) and each delegate, this runs ``compare(model, [delegate], feed)``
while recording the values it compared: the delegate's value of every row
tensor and the reference value it used (``unified.debug.runs.Reference``).
Then, per row tensor, the prefix subgraph ending at it is cut out with
``onnx.utils.Extractor`` (after ``onnx.shape_inference``) and run by a plain
``onnxruntime.InferenceSession`` (CPU EP, graph optimizations off, as the
reference) on the same feed. A row passes the prefix check when

* the reference value compare used equals the direct run: ``max |used -
  direct| <= 1e-6 x max(1, max |direct|)``, and
* the row's ``max_abs`` recomputed from the delegate's value and the direct
  run agrees within the same tolerance.

Where the extractor cannot cut a prefix (a subgraph reading outer-scope
values, which ``Extractor`` does not follow), the whole model with that tensor
added as an output is run instead; the row's ``check`` says which.

Each model runs in its own process (its delegates one after the other) with a
time limit (``--timeout``, default 480 s); the delegates it did not finish
are recorded as a timeout.
Results go to ``OUT/NAME.json`` (one per model: rows, checks, per-delegate
summary), and ``OUT/summary.md`` is rebuilt from every ``OUT/*.json`` at the
end (so one model can be rerun alone).

Usage:
    .venv/bin/python benchmarks/compare_corpus.py --out /tmp/compare_corpus
        [--models squeezenet magika] [--delegates tflite,executorch,reference] [--timeout 480]
    .venv/bin/python benchmarks/compare_corpus.py --out DIR --summarize   # only rebuild summary.md

Wall times include compiling and are not benchmarks.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import subprocess
import sys
import time
import traceback
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import onnx

DELEGATES = ("tflite", "executorch", "reference")
TOLERANCE = 1e-6
"""Prefix check: ``max |a - b| <= TOLERANCE x max(1, max |direct|)``."""
# small and fast first, the big executorch exports (densenet121, inception_v2, vgg19) last
LIGHT = ("bvlc_alexnet", "zfnet512", "squeezenet", "shufflenet", "resnet50", "inception_v1")
BIG = ("densenet121", "inception_v2", "vgg19")


def all_models() -> list[str]:
    from unified.conformance import real_models as rm

    return list(LIGHT) + list(rm.CORPUS) + list(BIG)


def load(name: str) -> tuple[onnx.ModelProto, dict[str, np.ndarray], str]:
    """(model, feed, description of where both came from)."""
    from unified.conformance import real_models as rm
    from unified.conformance import zoo

    if name in zoo.LIGHT_MODELS:
        model = zoo.redraw_weights(onnx.load(str(zoo.light_model_path(name))), seed=0)
        return model, zoo.random_inputs(model, seed=0), "light, redraw_weights(seed=0), random_inputs(seed=0)"
    variant = rm.variants(name)[0]
    return onnx.load(str(rm.fetch(name))), rm.inputs(name, variant), f"real, input variant {variant}"


# --- recording what compare compared ------------------------------------------------------


class Recorder:
    """Patches ``unified.debug.runs`` so that one ``compare`` call leaves behind its plan, the delegate's
    values (``actual``) and the reference values it used (``reference``)."""

    def __init__(self):
        self.actual: dict[str, Any] = {}
        self.reference: dict[str, Any] = {}
        self.plan = None

    @contextlib.contextmanager
    def active(self):
        from unified.debug import runs

        recorder, inner = self, runs.run_partitions
        in_reference = [False]

        class Recording(runs.Reference):
            def values(self, names):
                in_reference[0] = True
                try:
                    out = super().values(names)
                finally:
                    in_reference[0] = False
                recorder.reference.update(out)
                return out

        def run_partitions(built, feed):
            env = inner(built, feed)
            if not in_reference[0]:
                recorder.actual, recorder.plan = env, built.plan
            return env

        saved = runs.Reference, runs.run_partitions
        runs.Reference, runs.run_partitions = Recording, run_partitions
        try:
            yield self
        finally:
            runs.Reference, runs.run_partitions = saved


# --- the direct ONNX Runtime run of a prefix ----------------------------------------------


def _ort_run(model: onnx.ModelProto, feed: dict, output: str) -> np.ndarray:
    import onnxruntime as ort

    m = onnx.ModelProto()
    m.CopyFrom(model)
    m.ir_version = min(m.ir_version, 10)
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.log_severity_level = 3
    sess = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
    names = {i.name for i in sess.get_inputs()}
    return np.asarray(sess.run([output], {k: v for k, v in feed.items() if k in names})[0])


class Prefixes:
    """Direct ONNX Runtime values of tensors of one model, each from the prefix subgraph ending at it."""

    def __init__(self, model: onnx.ModelProto, feed: dict[str, np.ndarray]):
        self.model = onnx.shape_inference.infer_shapes(model)
        self.feed = feed
        self.inputs = [i.name for i in self.model.graph.input if i.name in feed]
        self.extractor = onnx.utils.Extractor(self.model)
        self.done: dict[str, tuple[np.ndarray, str]] = {}

    def _info(self, name: str, like: np.ndarray) -> onnx.ValueInfoProto:
        if name in self.extractor.value_infos:
            return self.extractor.value_infos[name]
        elem = onnx.helper.np_dtype_to_tensor_dtype(like.dtype)
        return onnx.helper.make_tensor_value_info(name, elem, None)

    def value(self, name: str, like: np.ndarray) -> tuple[np.ndarray, str]:
        """(ORT's value of ``name``, ``"prefix"`` or ``"whole model"``: which graph ran)."""
        if name not in self.done:
            self.extractor.value_infos.setdefault(name, self._info(name, like))
            try:
                prefix = self.extractor.extract_model(self.inputs, [name])
                self.done[name] = (_ort_run(prefix, self.feed, name), "prefix")
            except Exception:  # Extractor does not follow subgraphs' outer-scope reads
                whole = onnx.ModelProto()
                whole.CopyFrom(self.model)
                if name not in {o.name for o in whole.graph.output}:
                    whole.graph.output.append(self._info(name, like))
                self.done[name] = (_ort_run(whole, self.feed, name), "whole model")
        return self.done[name]


def _scaled_diff(a: np.ndarray, b: np.ndarray, scale_of: np.ndarray) -> float:
    if a.shape != b.shape:
        return math.inf
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    scale = max(1.0, float(np.max(np.abs(scale_of.astype(np.float64)))) if scale_of.size else 1.0)
    return float(np.max(np.abs(a64 - b64))) / scale if a.size else 0.0


def check_row(row: dict, recorder: Recorder, prefixes: Prefixes) -> dict:
    """The prefix check of one row (see the module docstring)."""
    actual = np.asarray(recorder.actual[row["tensor"]])
    used = np.asarray(recorder.reference[row["tensor"]])
    direct, how = prefixes.value(row["tensor"], used)
    ref_diff = _scaled_diff(used, direct, direct)
    recomputed = float(np.max(np.abs(actual.astype(np.float64) - direct.astype(np.float64)))) \
        if actual.shape == direct.shape and actual.size else (0.0 if actual.shape == direct.shape else math.inf)
    scale = max(1.0, float(np.max(np.abs(direct.astype(np.float64)))) if direct.size else 1.0)
    figure_diff = abs(recomputed - row["max_abs"]) / scale if math.isfinite(row["max_abs"]) else math.inf
    return {"tensor": row["tensor"], "check": how, "reference_diff": ref_diff, "max_abs_direct": recomputed,
            "figure_diff": figure_diff, "agrees": ref_diff <= TOLERANCE and figure_diff <= TOLERANCE}


# --- one (model, delegate), in its own process ------------------------------------------------


def _finite(values: list[float], pick) -> float | None:
    vals = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return pick(vals) if vals else None


def summarize(delegate: str, rows: list[dict], checks: list[dict], plan) -> dict:
    """Per-delegate figures: partitions, rows, worst errors, all-ok, prefix check."""
    on = [p for p in plan.partitions if p.delegate == delegate] if plan is not None else []
    return {
        "delegate": delegate,
        "partitions": len(plan.partitions) if plan is not None else 0,
        "partitions_on_delegate": len(on),
        "nodes_on_delegate": sum(len(p.nodes) for p in on),
        "boundary_rows": sum(r["kind"] == "boundary" for r in rows),
        "output_rows": sum(r["kind"] == "output" for r in rows),
        "worst_max_abs": _finite([r["max_abs"] for r in rows], max),
        "worst_error": _finite([r["error"] for r in rows], max),
        "min_cosine": _finite([r["cosine"] for r in rows], min),
        "min_sqnr_db": _finite([r["sqnr_db"] for r in rows], min),
        "all_ok": all(r["ok"] for r in rows),
        "prefix_checked": len(checks),
        "prefix_agrees": sum(c["agrees"] for c in checks),
        "prefix_worst_reference_diff": _finite([c["reference_diff"] for c in checks], max),
        "prefix_whole_model_runs": sum(c["check"] == "whole model" for c in checks),
    }


def _one(name: str, delegate: str, model: onnx.ModelProto, feed: dict, source: str) -> dict:
    from unified import SessionOptions
    from unified.debug import compare

    record: dict[str, Any] = {"model": name, "delegate": delegate, "source": source}
    start = time.perf_counter()
    try:
        recorder = Recorder()
        with warnings.catch_warnings(), recorder.active():
            warnings.simplefilter("ignore")
            rows = compare(model, [delegate], feed, options=SessionOptions())
        record["compare_s"] = time.perf_counter() - start
        prefixes = Prefixes(model, feed)
        checks = [check_row(r, recorder, prefixes) for r in rows]
        record.update(status="ok", rows=rows, checks=checks, summary=summarize(delegate, rows, checks, recorder.plan))
    except Exception as exc:  # a benchmark records the failure and goes on
        record.update(status="error", error=f"{type(exc).__name__}: {' '.join(str(exc).split())[:2000]}",
                      traceback=traceback.format_exc()[-4000:])
    record["seconds"] = time.perf_counter() - start
    return record


def worker(name: str, delegates: list[str], out: Path) -> None:
    """compare + prefix checks of one model on each delegate; rewrites ``out`` (JSON) after each delegate."""
    from unified.debug import to_json

    records: list[dict] = []
    try:
        model, feed, source = load(name)
    except Exception as exc:
        records = [{"model": name, "delegate": d, "status": "error", "error": f"{type(exc).__name__}: {exc}"}
                   for d in delegates]
        delegates = []
    for delegate in delegates:
        records.append(_one(name, delegate, model, feed, source))
        out.write_text(to_json({"model": name, "delegates": records}))
    out.write_text(to_json({"model": name, "delegates": records}))


def run_one(name: str, delegates: list[str], out_dir: Path, timeout: float) -> list[dict]:
    """Run :func:`worker` in a child process; a delegate not reached in ``timeout`` s, or lost to a crash,
    becomes a ``timeout`` / ``crash`` record."""
    part = out_dir / f"{name}.json"
    part.unlink(missing_ok=True)
    cmd = [sys.executable, __file__, "--out", str(out_dir), "--delegates", ",".join(delegates), "--worker", name]
    start = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        missing = {"status": "crash", "error": f"exit {proc.returncode}: {proc.stderr.strip()[-1500:]}"}
    except subprocess.TimeoutExpired:
        missing = {"status": "timeout", "error": f"the model exceeded {timeout:.0f} s"}
    records = json.loads(part.read_text())["delegates"] if part.is_file() else []
    done = {r["delegate"] for r in records}
    seconds = time.perf_counter() - start - sum(r.get("seconds", 0) for r in records)
    records += [{"model": name, "delegate": d, "seconds": seconds, **missing} for d in delegates if d not in done]
    return records


# --- the summary --------------------------------------------------------------------------------


def _g(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "yes" if value else "NO"
    return f"{value:.3g}" if math.isfinite(value) else ("inf" if value > 0 else "-inf")


def _num(value: Any) -> Any:
    return float(value) if isinstance(value, str) and value in ("inf", "-inf", "nan") else value


HEADER = ("| model | delegate | partitions (on delegate / all) | rows (boundary + output) | worst max_abs | "
          "worst error | min cosine | min SQNR dB | all ok | prefix check | s |")


def summary_line(rec: dict) -> str:
    """One Markdown row of the summary table."""
    head = f"| {rec['model']} | {rec['delegate']} |"
    if rec.get("status") != "ok":
        return f"{head} {rec.get('status')}: {rec.get('error', '')[:200]} ||||||||| {_g(rec.get('seconds'))} |"
    s = {k: _num(v) for k, v in rec["summary"].items()}
    check = f"{s['prefix_agrees']}/{s['prefix_checked']} agree"
    if s["prefix_whole_model_runs"]:
        check += f" ({s['prefix_whole_model_runs']} whole-model)"
    check += f", ref diff {_g(s['prefix_worst_reference_diff'])}"
    return (f"{head} {s['partitions_on_delegate']} / {s['partitions']} | {s['boundary_rows']} + {s['output_rows']} | "
            f"{_g(s['worst_max_abs'])} | {_g(s['worst_error'])} | {_g(s['min_cosine'])} | {_g(s['min_sqnr_db'])} | "
            f"{_g(s['all_ok'])} | {check} | {_g(rec.get('seconds'))} |")


def write_summary(out_dir: Path) -> str:
    order = {m: i for i, m in enumerate(all_models())}
    records = []
    for path in out_dir.glob("*.json"):
        records.extend(json.loads(path.read_text()).get("delegates", []))
    records.sort(key=lambda r: (order.get(r["model"], len(order)), DELEGATES.index(r["delegate"])
                                if r["delegate"] in DELEGATES else 99))
    lines = [HEADER, "|" + "---|" * (HEADER.count("|") - 1)]
    lines += [summary_line(r) for r in records]
    text = "\n".join(lines) + "\n"
    (out_dir / "summary.md").write_text(text)
    return text


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, type=Path, help="directory for NAME.json and summary.md")
    p.add_argument("--models", nargs="+", help="models to run (default: every light and real model)")
    p.add_argument("--delegates", default=",".join(DELEGATES), help="comma-separated delegates")
    p.add_argument("--timeout", type=float, default=480.0, help="seconds per model (all its delegates)")
    p.add_argument("--summarize", action="store_true", help="only rebuild OUT/summary.md")
    p.add_argument("--worker", metavar="MODEL", help=argparse.SUPPRESS)
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    delegates = args.delegates.split(",")
    if args.worker:
        return worker(args.worker, delegates, args.out / f"{args.worker}.json")
    from unified.debug import to_json

    for name in ([] if args.summarize else args.models or all_models()):
        records = run_one(name, delegates, args.out, args.timeout)
        (args.out / f"{name}.json").write_text(to_json({"model": name, "delegates": records}))
        for rec in records:
            print(summary_line(rec), flush=True)
    print(write_summary(args.out))


if __name__ == "__main__":
    main()
