"""``report.html``: one self-contained file, no network.

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
from importlib import resources
from pathlib import Path

from unified.conformance.report import Report

__all__ = ["render_html", "write_html", "PLACEHOLDER"]

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
