"""The onnxruntime delegate's options reach ORT's SessionOptions as ORT reads them."""

import onnxruntime as ort
import pytest

from unified.delegates.onnxruntime.executable import _session_options
from unified.errors import DelegateError


def _entry(so, key: str) -> str:
    return so.get_session_config_entry(key)


def test_defaults_spin_off_and_qdq_as_the_spec_writes_it():
    so = _session_options(ort, {})
    assert _entry(so, "session.intra_op.allow_spinning") == "0"
    assert _entry(so, "session.disable_quant_qdq") == "1"
    assert so.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL


def test_options_turn_them_on():
    so = _session_options(ort, {"spinning": True, "qdq_fusion": True, "num_threads": 3,
                                "optimization_level": "basic"})
    assert _entry(so, "session.intra_op.allow_spinning") == "1"
    assert _entry(so, "session.disable_quant_qdq") == "0"
    assert so.intra_op_num_threads == 3
    assert so.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_BASIC


def test_unknown_option_names_the_known_ones():
    with pytest.raises(DelegateError, match="known: backend, num_threads, optimization_level, qdq_fusion, spinning"):
        _session_options(ort, {"spin": True})
