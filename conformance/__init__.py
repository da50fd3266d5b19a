"""Conformance: cases, runner, comparison, reports (see DESIGN.md)."""
