"""The ``--fast`` subset CI runs: every op x delegate pair the full run claims, once.

A full ``unified conformance run`` finds false claims that a hand-picked
subset never sees. :func:`derive_fast_cases` reads a full run's report and
picks, for every (delegate, op) pair some case of which the delegate claimed,
the quickest claimed case of that op; whole-model cases stay out (each
model source's own fast subset covers them: every model would make the subset
take most of an hour, 5,200 s of work measured on 2 cores). The
result is committed as ``conformance/data/fast_cases.json``
(``unified conformance fast-subset REPORT``). ``--fast`` then runs each
source's own small subset plus these cases, so CI touches every claim the
delegates make at least once, in a few minutes.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

from unified.conformance.report import Report

__all__ = ["FAST_CASES_FILE", "derive_fast_cases", "fast_case_ids", "write_fast_cases"]

FAST_CASES_FILE = Path(__file__).parent / "data" / "fast_cases.json"


def derive_fast_cases(report: Report) -> dict[str, Any]:
    """Pick one claimed case per (delegate, op) of a full run.

    Args:
        report: a report of a run over all sources (not ``--fast``).

    Returns:
        ``{"created": ..., "unified_version": ..., "pairs": {delegate: {group: case id}},
        "cases": [sorted case ids]}``; among the candidates of a pair the
        fastest wins (its ``seconds``), and a case already picked for another
        delegate is preferred, so the subset stays small.
    """
    by_pair: dict[tuple[str, str], list] = {}
    for r in report.results:
        if not r.claimed:
            continue
        group = report.cases.get(r.case, {}).get("op")
        if group:  # op-level cases only; whole models come from each source's own subset
            by_pair.setdefault((r.delegate, group), []).append(r)
    chosen: set[str] = set()
    pairs: dict[str, dict[str, str]] = {}
    # pairs with the fewest candidates first, so shared picks can serve the rest
    for (delegate, group), results in sorted(by_pair.items(), key=lambda kv: (len(kv[1]), kv[0])):
        shared = [r for r in results if r.case in chosen]
        pick = min(shared or results, key=lambda r: (r.seconds, r.case))
        chosen.add(pick.case)
        pairs.setdefault(delegate, {})[group] = pick.case
    return {
        "created": report.created,
        "unified_version": report.unified_version,
        "pairs": {d: dict(sorted(g.items())) for d, g in sorted(pairs.items())},
        "cases": sorted(chosen),
    }


def write_fast_cases(report: Report, path: str | Path = FAST_CASES_FILE) -> dict[str, Any]:
    """:func:`derive_fast_cases`, written as JSON to ``path``."""
    data = derive_fast_cases(report)
    Path(path).write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    return data


@functools.lru_cache(maxsize=None)
def fast_case_ids(path: str | Path = FAST_CASES_FILE) -> frozenset[str]:
    """The committed fast case ids (empty when the file is missing)."""
    p = Path(path)
    if not p.is_file():
        return frozenset()
    return frozenset(json.loads(p.read_text()).get("cases", ()))
