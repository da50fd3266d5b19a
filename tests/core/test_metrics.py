"""unified.metrics against independent references (SciPy, PyTorch, hand-computed values)."""

import math

import numpy as np
import pytest

from unified import metrics
from unified.errors import InputError

scipy_special = pytest.importorskip("scipy.special")


def test_max_abs_and_rel_hand_computed():
    ref = np.array([1.0, -2.0, 4.0], np.float32)
    act = np.array([1.5, -2.0, 3.0], np.float32)
    assert metrics.max_abs_error(act, ref) == 1.0
    assert metrics.max_rel_error(act, ref) == 0.5  # 0.5 / 1.0 beats 1.0 / 4.0


def test_nan_in_both_counts_equal_and_nan_in_one_is_infinite():
    ref = np.array([np.nan, 1.0])
    assert metrics.max_abs_error(np.array([np.nan, 1.0]), ref) == 0.0
    assert metrics.max_abs_error(np.array([0.0, 1.0]), ref) == math.inf
    assert metrics.sqnr_db(np.array([0.0, 1.0]), ref) == -math.inf


def test_cosine_matches_scipy_distance():
    from scipy.spatial.distance import cosine

    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((4, 8)), rng.standard_normal((4, 8))
    assert metrics.cosine_similarity(a, b) == pytest.approx(1.0 - cosine(a.ravel(), b.ravel()), abs=1e-12)
    assert metrics.cosine_similarity(np.zeros(3), np.zeros(3)) == 1.0


def test_sqnr_matches_torch_ao_definition():
    torch = pytest.importorskip("torch")
    from torch.ao.ns.fx.utils import compute_sqnr

    rng = np.random.default_rng(1)
    ref = rng.standard_normal(1000).astype(np.float32)
    act = ref + 0.01 * rng.standard_normal(1000).astype(np.float32)
    expected = float(compute_sqnr(torch.from_numpy(ref), torch.from_numpy(act)))
    assert metrics.sqnr_db(act, ref) == pytest.approx(expected, rel=1e-4)
    assert metrics.sqnr_db(ref, ref) == math.inf


def test_kl_divergence_matches_scipy_rel_entr():
    rng = np.random.default_rng(2)
    ref, act = rng.standard_normal((3, 10)), rng.standard_normal((3, 10))
    p = scipy_special.softmax(ref, axis=-1)
    q = scipy_special.softmax(act, axis=-1)
    expected = float(np.mean(np.sum(scipy_special.rel_entr(p, q), axis=-1)))
    assert metrics.kl_divergence(act, ref) == pytest.approx(expected, rel=1e-9)
    assert metrics.kl_divergence(p, p, logits=False) == pytest.approx(0.0, abs=1e-12)


def test_topk_agreement():
    ref = np.array([[0.1, 0.9, 0.0], [0.8, 0.1, 0.1]])
    act = np.array([[0.5, 0.4, 0.1], [0.9, 0.0, 0.1]])  # row 0: top-1 differs, 2nd place is the reference's
    assert metrics.topk_agreement(act, ref, k=1) == 0.5
    assert metrics.topk_agreement(act, ref, k=2) == 1.0


def test_shape_mismatch_names_both_shapes():
    with pytest.raises(InputError, match=r"\(2,\) vs reference \(3,\)"):
        metrics.max_abs_error(np.zeros(2), np.zeros(3))
