"""Rendering a :class:`Report`: ``junit.xml``, ``summary.md``, ``report.html``,
the terminal table; :func:`write_reports` writes them with ``report.json``.

* ``report.json`` — :meth:`Report.to_dict` (schema ``unified.conformance.report``,
  versioned), every result with its error statistics.
* ``junit.xml`` — one ``<testsuite>`` per delegate, one ``<testcase>`` per
  case: ``fail`` -> ``<failure>``, ``error`` -> ``<error>``, ``unsupported``,
  ``skipped`` and ``compiled`` -> ``<skipped>`` (with the reason), as CI
  systems (GitLab, Jenkins, GitHub test reporters) read the JUnit format.
* ``summary.md`` — the per-delegate table and the false-claim list, to paste
  into a pull request.
* ``report.html`` — one self-contained file, no network.

  The page is ``templates/report.html`` (CSS and JavaScript inline) with the
  report's JSON embedded in a ``<script type="application/json">`` element; the
  script draws the per-delegate table and the op x delegate matrix from it
  (cell = passed / claimed cases, colored: all pass, a false claim, compiled
  only, not claimed, skipped), with filters (text, source, dtype, only rows
  with false claims) and per-case details (reason, error statistics) on click.
  Each matrix cell carries ``data-pass``, ``data-claimed`` and ``data-false``
  attributes, which the tests read from a headless browser.

  No template engine is needed: the template has one placeholder.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections import Counter
from importlib import resources
from pathlib import Path

from unified.conformance.report import Report

__all__ = [
    "write_reports", "write_junit", "summary_markdown", "summary_table", "render_html", "write_html",
    "REPORT_FILES", "PLACEHOLDER",
]

REPORT_FILES = ("report.json", "junit.xml", "summary.md", "report.html")


def write_reports(report: Report, out_dir: str | Path) -> dict[str, Path]:
    """Write the four report files into ``out_dir`` (created if needed).

    Returns:
        File name -> path.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "report.json": report.write_json(out / "report.json"),
        "junit.xml": write_junit(report, out / "junit.xml"),
        "summary.md": out / "summary.md",
        "report.html": write_html(report, out / "report.html"),
    }
    paths["summary.md"].write_text(summary_markdown(report))
    return paths


def write_junit(report: Report, path: str | Path) -> Path:
    """JUnit XML: a testsuite per delegate, a testcase per case."""
    root = ET.Element("testsuites", name="unified conformance", time=f"{report.duration_s:.3f}")
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for delegate, results in report.by_delegate().items():
        suite = ET.SubElement(root, "testsuite", name=f"conformance.{delegate}")
        counts = {"tests": len(results), "failures": 0, "errors": 0, "skipped": 0}
        seconds = 0.0
        for r in results:
            source = report.cases.get(r.case, {}).get("source", "case")
            tc = ET.SubElement(suite, "testcase", classname=f"{delegate}.{source}", name=r.case, time=f"{r.seconds:.4f}")
            if r.node:  # --ray: the node that ran it
                ET.SubElement(ET.SubElement(tc, "properties"), "property", name="node", value=r.node)
            seconds += r.seconds
            if r.status == "fail":
                counts["failures"] += 1
                el = ET.SubElement(tc, "failure", message=_clean(r.reason)[:500], type="numerics")
                el.text = _clean(_stats_text(r.outputs))
            elif r.status == "error":
                counts["errors"] += 1
                el = ET.SubElement(tc, "error", message=_clean(r.reason)[:500], type=r.phase or "error")
                el.text = _clean(r.reason)
            elif r.status in ("unsupported", "skipped", "compiled"):
                counts["skipped"] += 1
                ET.SubElement(tc, "skipped", message=_clean(f"{r.status}: {r.reason}")[:500])
        for k, v in counts.items():
            suite.set(k, str(v))
            totals[k] += v
        suite.set("time", f"{seconds:.3f}")
    for k, v in totals.items():
        root.set(k, str(v))
    ET.indent(root)
    path = Path(path)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)
    return path


def _clean(text: str) -> str:
    """Drop characters XML 1.0 cannot carry (control bytes in error messages)."""
    return "".join(c for c in str(text) if c in "\t\n\r" or ord(c) >= 0x20)


def _stats_text(outputs) -> str:
    lines = []
    for o in outputs:
        lines.append(
            f"{o['name']}: {'ok' if o['passed'] else 'MISMATCH'} {o.get('reason') or ''} dtype={o['dtype']} "
            f"max_abs={o['max_abs']} max_rel={o['max_rel']} max_ulp={o['max_ulp']} "
            f"mismatches={o['mismatches']}/{o['size']} required atol={o['required_atol']} rtol={o['required_rtol']}"
        )
    return "\n".join(lines)


def summary_table(report: Report) -> str:
    """The per-delegate Markdown table (what the README shows)."""
    head = ("delegate", "cases", "claimed", "pass", "fail", "error", "unsupported", "skipped", "compiled",
            "false claims", "ops claimed", "ops conformant")
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for d, s in report.summary().items():
        info = report.delegates.get(d, {})
        name = d if info.get("available", True) else f"{d} (unavailable)"
        cells = (name, s.cases, s.claimed, s.count("pass"), s.count("fail"), s.count("error"), s.count("unsupported"),
                 s.count("skipped"), s.count("compiled"), f"**{s.false_claims}**" if s.false_claims else "0",
                 s.ops_claimed, s.ops_conformant)
        rows.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(rows)


def summary_markdown(report: Report, max_false_claims: int = 40) -> str:
    """``summary.md``: header, per-delegate table, false claims, unavailable delegates."""
    n = len(report.cases)
    lines = [
        "# unified conformance summary",
        "",
        f"unified {report.unified_version or '?'} · {report.created} · sources: {', '.join(report.sources) or '-'} · "
        f"{n} cases × {len(report.delegates)} delegates in {report.duration_s:.0f} s "
        f"({report.host.get('cpus', '?')} CPUs, {report.options.get('jobs') or '?'} workers)",
        "",
        summary_table(report),
        "",
        "*claimed*: the delegate's `supports()` took every node of the case graph (strict plan). "
        "*false claims*: claimed, then `fail` (numbers off) or `error` (raised, crashed or timed out). "
        "An op is *conformant* when every claimed case of it passes.",
        "",
    ]
    summary = report.summary()
    bad = [(d, s) for d, s in summary.items() if s.false_claims]
    lines.append("## False claims")
    lines.append("")
    if not bad:
        lines.append("None.")
    for d, s in bad:
        lines.append(f"### {d} ({s.false_claims})")
        lines.append("")
        lines.append("| case | status | reason |")
        lines.append("|---|---|---|")
        for case in s.false_claim_cases[:max_false_claims]:
            r = report.result(d, case)
            reason = _md(r.reason if r else "")[:240]
            lines.append(f"| `{case}` | {r.status if r else '?'} | {reason} |")
        if s.false_claims > max_false_claims:
            lines.append(f"| … and {s.false_claims - max_false_claims} more (see report.json) | | |")
        lines.append("")
    lines.extend(_nodes_markdown(report))
    missing = [(d, i) for d, i in report.delegates.items() if not i.get("available", True) or not i.get("executes", True)]
    if missing:
        lines.append("## Not executed here")
        lines.append("")
        for d, i in missing:
            what = "unavailable" if not i.get("available", True) else "compile-only"
            lines.append(f"- **{d}** ({what}): {_md(i.get('reason') or '-')}")
        lines.append("")
    return "\n".join(lines)


def _nodes_markdown(report: Report) -> list[str]:
    """``--ray`` runs: the section of which node ran how many cases of each delegate."""
    nodes = (report.options.get("ray") or {}).get("nodes")
    if not nodes:
        return []
    ran: dict[str, Counter] = {}
    for r in report.results:
        if r.node:
            ran.setdefault(r.node, Counter())[r.delegate] += 1
    lines = ["## Ray nodes", "", "| node | hostname | IP | CPUs | cases run |", "|---|---|---|---|---|"]
    for node_id, n in nodes.items():
        runs = ", ".join(f"{d} {k}" for d, k in sorted(ran.get(node_id, {}).items())) or "-"
        lines.append(f"| `{node_id[:12]}` | {_md(n.get('hostname', ''))} | {n.get('ip', '')} | {n.get('cpus', '')} "
                     f"| {runs} |")
    return lines + [""]


def _md(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


# --- report.html ----------------------------------------------------------------

PLACEHOLDER = "/*__REPORT_DATA__*/"


def _template() -> str:
    return resources.files("unified.conformance").joinpath("templates/report.html").read_text(encoding="utf-8")


def render_html(report: Report) -> str:
    """The HTML page of ``report`` as a string (UTF-8 text)."""
    data = json.dumps(report.to_dict(), separators=(",", ":"), allow_nan=False, default=str)
    # keep the JSON inert inside <script>: no "</script>" or "<!--" can end or comment it
    data = data.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    page = _template()
    return page.replace(PLACEHOLDER, data, 1)


def write_html(report: Report, path: str | Path) -> Path:
    """Write :func:`render_html` to ``path``."""
    path = Path(path)
    path.write_text(render_html(report), encoding="utf-8")
    return path
