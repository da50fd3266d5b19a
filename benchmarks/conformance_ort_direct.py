"""ONNX Runtime called directly vs. through the onnxruntime delegate, on the onnx-node cases.

For every ``onnx-node`` case, ONNX Runtime (CPU EP, default options) runs
the case model directly, two ways:

* **as is** — the model bytes exactly as onnx generated them (what a user
  calling ``onnxruntime.InferenceSession`` gets; onnx 1.23 writes IR 14 for
  some, which ORT 1.31 refuses);
* **IR lowered** — the IR version lowered to the lowest one that knows the
  model's opsets (what unified's loader does for a delegate);

and the outputs are compared with the same rule and tolerances the suite
uses. The delegate's numbers come from a conformance run (``--report``, or
one made here in-process). Prints the counts and the cases where the two
paths disagree.

Usage::

    .venv/bin/python benchmarks/conformance_ort_direct.py [--report out/report.json]
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings

import onnx


def direct_passes(lower_ir: bool) -> tuple[set[str], dict[str, str]]:
    """Case ids ONNX Runtime passes when called directly, and why the others did not."""
    import onnxruntime as ort

    from unified.conformance.cases import _ir_for_ort
    from unified.conformance.compare import compare_outputs
    from unified.conformance.node_tests import node_cases

    so = ort.SessionOptions()
    so.log_severity_level = 4
    passed, why = set(), {}
    for case in node_cases():
        data = case.loader()
        model = data.model
        if lower_ir:
            model = onnx.ModelProto()
            model.CopyFrom(data.model)
            model.ir_version = _ir_for_ort(model)
        names = [o.name for o in model.graph.output]
        try:
            sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
            ok = True
            for inputs, expected in data.data_sets:
                got = sess.run(None, inputs)
                stats = compare_outputs(names, expected, got, case.tolerance, None, case.compare_values)
                ok = ok and all(s.passed for s in stats)
            if ok:
                passed.add(case.id)
            else:
                why[case.id] = "numbers off"
        except Exception as exc:
            why[case.id] = f"{type(exc).__name__}: {' '.join(str(exc).split())[:160]}"
    return passed, why


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--report", help="report.json of a run including the onnxruntime delegate on onnx-node")
    ap.add_argument("--show", type=int, default=30, help="list at most this many disagreeing cases")
    args = ap.parse_args(argv)
    warnings.simplefilter("ignore")
    from unified.conformance import gather_cases, load_report, run_conformance

    start = time.perf_counter()
    if args.report:
        report = load_report(args.report)
    else:
        _, cases = gather_cases(["onnx-node"])
        report = run_conformance(cases, ["onnxruntime"], isolate=False)
    results = {r.case: r for r in report.results if r.delegate == "onnxruntime" and r.case.startswith("onnx-node/")}
    via = {c for c, r in results.items() if r.status == "pass"}
    false_claims = sorted(c for c, r in results.items() if r.false_claim)
    as_is, why_as_is = direct_passes(False)
    lowered, why_lowered = direct_passes(True)
    total = len(results)
    print(f"onnx-node cases: {total}")
    print(f"ONNX Runtime directly, model as is:    {len(as_is)} pass")
    print(f"ONNX Runtime directly, IR lowered:     {len(lowered)} pass")
    print(f"through the onnxruntime delegate:      {len(via)} pass, {len(false_claims)} false claims")
    for label, direct, why in (("as is", as_is, why_as_is), ("IR lowered", lowered, why_lowered)):
        only_direct = sorted(direct - via)
        only_via = sorted(via - direct)
        print(f"\n[{label}] pass directly but not through the delegate: {len(only_direct)}")
        for c in only_direct[: args.show]:
            print(f"  {c}: {results[c].status} ({results[c].reason[:150]})")
        print(f"[{label}] pass through the delegate but not directly: {len(only_via)}")
        for c in only_via[: args.show]:
            print(f"  {c}: direct: {why.get(c, '?')}")
    if false_claims:
        print("\nfalse claims:", ", ".join(false_claims))
    print(f"\n({time.perf_counter() - start:.1f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
