"""Localize numeric differences: layer-wise ``compare`` against ONNX Runtime, and ``bisect`` to one node.

``unified compare`` and ``unified bisect`` are the command-line faces of
:func:`compare`, :func:`compare_models` and :func:`bisect`.
"""

from unified.debug.bisect import BisectResult, Probe, bisect
from unified.debug.compare import MODEL_ROW_KEYS, ROW_KEYS, compare, compare_models, format_rows, rows_to_json, to_json

__all__ = [
    # layer-wise comparison
    "compare",
    "compare_models",
    "format_rows",
    "rows_to_json",
    "to_json",
    "ROW_KEYS",
    "MODEL_ROW_KEYS",
    # bisection
    "bisect",
    "BisectResult",
    "Probe",
]
