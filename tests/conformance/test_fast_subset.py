"""The --fast subset is derived from a full run: every claimed op x delegate pair, once."""

from __future__ import annotations

import json

from unified.conformance.execute import CaseResult
from unified.conformance.fast import derive_fast_cases, fast_case_ids, write_fast_cases
from unified.conformance.report import Report
from unified.conformance.cases import gather_cases


def _report() -> Report:
    cases = {
        "n/conv_a": {"op": "Conv"}, "n/conv_b": {"op": "Conv"}, "n/relu": {"op": "Relu"},
        "n/topk": {"op": "TopK"}, "models/light/squeezenet": {"op": None, "group": "squeezenet"},
    }
    r = [
        CaseResult("n/conv_a", "tflite", "pass", seconds=0.5),
        CaseResult("n/conv_b", "tflite", "pass", seconds=0.1),
        CaseResult("n/conv_a", "executorch", "fail", seconds=0.2),   # a false claim is a claim
        CaseResult("n/conv_b", "executorch", "unsupported", seconds=0.0),
        CaseResult("n/relu", "tflite", "pass", seconds=0.1),
        CaseResult("n/topk", "tflite", "unsupported", seconds=0.0),  # not claimed: no pair
        CaseResult("models/light/squeezenet", "executorch", "pass", seconds=3.0),
    ]
    return Report(cases=cases, results=r, delegates={"tflite": {}, "executorch": {}}, created="t0")


def test_every_claimed_op_pair_gets_one_case_and_shared_picks_are_preferred():
    data = derive_fast_cases(_report())
    assert data["pairs"] == {  # whole models stay out: their sources' own subsets cover them
        "executorch": {"Conv": "n/conv_a"},
        # conv_b is quicker, but conv_a is already in the subset for executorch
        "tflite": {"Conv": "n/conv_a", "Relu": "n/relu"},
    }
    assert data["cases"] == ["n/conv_a", "n/relu"]


def test_written_subset_is_read_back(tmp_path):
    path = tmp_path / "fast.json"
    write_fast_cases(_report(), path)
    assert json.loads(path.read_text())["cases"] == sorted(fast_case_ids(path))


def test_committed_fast_cases_all_exist():
    """Every case id of the committed subset is still a case (a renamed case would silently drop a pair)."""
    committed = fast_case_ids()
    assert len(committed) > 100, "conformance/data/fast_cases.json is missing or nearly empty"
    _, cases = gather_cases(None, None)
    missing = sorted(committed - {c.id for c in cases})
    assert not missing, f"conformance/data/fast_cases.json names cases that no longer exist: {missing[:10]}"
