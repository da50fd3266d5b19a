"""Reports: JSON round trip, JUnit, Markdown, diff, the CLI, and the HTML matrix in headless Chromium."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from dataclasses import replace

import pytest

from unified.cli import main
from unified.conformance import diff_reports, load_report, run_conformance, write_reports
from unified.conformance.report import Report

from .conftest import BROKEN

CASES = ("test_add", "test_add_bcast", "test_relu", "test_sigmoid", "test_add_uint8")


@pytest.fixture(scope="module")
def report(node_case) -> Report:
    return run_conformance([node_case(n) for n in CASES], ["onnxruntime", "wrong_add"], plugins=[BROKEN],
                           isolate=False, sources=["onnx-node"])


def test_json_round_trip_keeps_every_result_and_number(report, tmp_path):
    path = report.write_json(tmp_path / "report.json")
    data = json.loads(path.read_text())
    assert data["schema"] == "unified.conformance.report" and data["schema_version"] == 1
    again = load_report(path)
    assert [r.to_dict() for r in again.results] == [r.to_dict() for r in report.results]
    assert {d: s.to_dict() for d, s in again.summary().items()} == {d: s.to_dict() for d, s in report.summary().items()}
    assert data["summary"]["wrong_add"]["false_claims"] == 2
    assert data["summary"]["onnxruntime"]["counts"]["pass"] == len(CASES)


def test_a_report_of_another_schema_version_is_refused(report, tmp_path):
    data = report.to_dict()
    data["schema_version"] = 99
    path = tmp_path / "old.json"
    path.write_text(json.dumps(data))
    with pytest.raises(Exception, match="report schema version 99 is not 1"):
        load_report(path)


def test_junit_has_one_testcase_per_delegate_and_case(report, tmp_path):
    paths = write_reports(report, tmp_path)
    root = ET.parse(paths["junit.xml"]).getroot()
    suites = {s.get("name"): s for s in root.iter("testsuite")}
    assert set(suites) == {"conformance.onnxruntime", "conformance.wrong_add"}
    wrong = suites["conformance.wrong_add"]
    assert int(wrong.get("tests")) == len(CASES) and int(wrong.get("failures")) == 2
    assert int(wrong.get("skipped")) == 3  # Relu, Sigmoid, uint8 Add declined
    failed = sorted(tc.get("name") for tc in wrong.iter("testcase") if tc.find("failure") is not None)
    assert failed == ["onnx-node/test_add", "onnx-node/test_add_bcast"]
    assert int(root.get("tests")) == 2 * len(CASES)


def test_summary_md_has_the_table_and_lists_false_claims(report, tmp_path):
    text = write_reports(report, tmp_path)["summary.md"].read_text()
    row = next(line for line in text.splitlines() if line.startswith("| wrong_add "))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[:6] == ["wrong_add", str(len(CASES)), "2", "0", "2", "0"]
    assert "**2**" in row
    assert "### wrong_add (2)" in text and "`onnx-node/test_add_bcast` | fail |" in text


def test_diff_lists_regressions_and_fixes_and_the_cli_gates_on_them(report, tmp_path):
    flipped = []
    for r in report.results:
        if r.delegate == "onnxruntime" and r.case == "onnx-node/test_relu":
            r = replace(r, status="fail", reason="numbers off")
        elif r.delegate == "wrong_add" and r.case == "onnx-node/test_add":
            r = replace(r, status="pass", reason="")
        flipped.append(r)
    new = replace(report, results=flipped)
    d = diff_reports(report, new)
    assert [(c.delegate, c.case, c.old, c.new) for c in d.regressions] == [
        ("onnxruntime", "onnx-node/test_relu", "pass", "fail")]
    assert [(c.delegate, c.case) for c in d.fixes] == [("wrong_add", "onnx-node/test_add")]
    old_path, new_path = report.write_json(tmp_path / "old.json"), new.write_json(tmp_path / "new.json")
    assert main(["conformance", "diff", str(old_path), str(new_path)]) == 1
    assert main(["conformance", "diff", str(new_path), str(old_path)]) == 1  # the reverse regresses wrong_add
    assert main(["conformance", "diff", str(old_path), str(old_path)]) == 0


def test_cli_run_writes_the_reports_and_can_gate_on_false_claims(tmp_path, capsys):
    args = ["conformance", "run", "--delegates", "onnxruntime,wrong_add", "--sources", "onnx-node",
            "-k", "onnx-node/test_add_bcast", "--plugin", BROKEN, "--jobs", "1", "--no-progress"]
    assert main(args + ["--out", str(tmp_path / "a")]) == 0
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["junit.xml", "report.html", "report.json", "summary.md"]
    out = capsys.readouterr().out
    assert "| wrong_add | 1 | 1 | 0 | 1 |" in out
    assert main(args + ["--out", str(tmp_path / "b"), "--fail-on-false-claims"]) == 1


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(_chromium() is None, reason="needs Debian's chromium (.ci/run installs it)")
def test_html_matrix_renders_the_right_counts_in_headless_chromium(report, tmp_path):
    path = write_reports(report, tmp_path)["report.html"]
    assert "http://" not in path.read_text().replace("http://www.w3.org", "") and "https://" not in path.read_text()
    dom = subprocess.run(
        [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
         "--dump-dom", path.as_uri()],
        capture_output=True, text=True, timeout=120, check=True,
    ).stdout
    assert 'data-rendered="1"' in dom
    rows = re.findall(r'<tr data-row="([^"]+)">(.*?)</tr>', dom)
    expected = report.matrix()
    assert sorted(name for name, _ in rows) == sorted(expected)
    for name, cells in rows:
        got = {d: (int(p), int(c), int(f)) for d, p, c, f in re.findall(
            r'data-delegate="([^"]+)" data-pass="(\d+)" data-claimed="(\d+)" data-false="(\d+)"', cells)}
        for delegate, counts in expected[name].items():
            claimed = sum(counts.get(s, 0) for s in ("pass", "fail", "error", "compiled"))
            bad = counts.get("fail", 0) + counts.get("error", 0)
            assert got[delegate] == (counts.get("pass", 0), claimed, bad), (name, delegate)
    assert re.search(r'<tr data-delegate="wrong_add">.*?data-false-claims="2"', dom)
    add_row = dict(rows)["Add"]
    assert 'class="cell bad"' in add_row and 'class="cell good"' in add_row
