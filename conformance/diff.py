"""Compare two conformance reports: regressions and fixes, for CI gates.

For each (delegate, case) present in both reports:

* **regression** — it passed before and does not now (fail, error, or no
  longer claimed), or it is a false claim now (``fail``/``error``) and was
  not before (including a case new in NEW);
* **fix** — it passes now and did not before (a repaired false claim, or new
  coverage);
* results ``skipped`` in NEW (delegate unavailable on that host) are not
  compared.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from unified.conformance.report import Report

__all__ = ["Change", "ReportDiff", "diff_reports"]

_BAD = ("fail", "error")


@dataclass(frozen=True)
class Change:
    """One (delegate, case) whose status changed."""

    delegate: str
    case: str
    old: str
    new: str
    reason: str = ""

    def __str__(self) -> str:
        why = f"  ({self.reason[:160]})" if self.reason else ""
        return f"{self.delegate:<12} {self.case}: {self.old} -> {self.new}{why}"


@dataclass
class ReportDiff:
    """The changes from OLD to NEW."""

    regressions: list[Change] = field(default_factory=list)
    fixes: list[Change] = field(default_factory=list)
    other: list[Change] = field(default_factory=list)
    not_compared: int = 0
    old_summary: dict = field(default_factory=dict)
    new_summary: dict = field(default_factory=dict)

    def text(self, limit: int = 200) -> str:
        """Human-readable listing (regressions first)."""
        lines = []
        for title, items in (("regressions", self.regressions), ("fixes", self.fixes)):
            lines.append(f"{title} ({len(items)}):")
            lines.extend(f"  {c}" for c in items[:limit])
            if len(items) > limit:
                lines.append(f"  ... and {len(items) - limit} more")
        if self.other:
            lines.append(f"other status changes: {len(self.other)}")
        if self.not_compared:
            lines.append(f"not compared (skipped in NEW): {self.not_compared}")
        lines.append("per delegate (old -> new): pass, false claims")
        for d in sorted(set(self.old_summary) | set(self.new_summary)):
            o, n = self.old_summary.get(d), self.new_summary.get(d)
            op = o.count("pass") if o else "-"
            np_ = n.count("pass") if n else "-"
            of = o.false_claims if o else "-"
            nf = n.false_claims if n else "-"
            lines.append(f"  {d:<12} pass {op} -> {np_}, false claims {of} -> {nf}")
        return "\n".join(lines)


def diff_reports(old: Report, new: Report) -> ReportDiff:
    """Classify every status change from ``old`` to ``new``."""
    before = {(r.delegate, r.case): r for r in old.results}
    out = ReportDiff(old_summary=old.summary(), new_summary=new.summary())
    for r in new.results:
        prev = before.get((r.delegate, r.case))
        old_status = prev.status if prev else "absent"
        if r.status == "skipped" and old_status != "skipped":
            out.not_compared += 1
            continue
        if old_status == r.status:
            continue
        change = Change(r.delegate, r.case, old_status, r.status, r.reason)
        if (old_status == "pass" and r.status != "pass") or (r.status in _BAD and old_status not in _BAD):
            out.regressions.append(change)
        elif r.status == "pass":
            out.fixes.append(change)
        else:
            out.other.append(change)
    return out
