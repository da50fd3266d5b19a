"""Keeping LiteRT's native log lines (written from C++ to fd 2) off stderr."""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import threading
from typing import Iterator

__all__ = ["quiet_native_stderr"]

log = logging.getLogger("unified.delegates.tflite")
_FD2_LOCK = threading.Lock()


@contextlib.contextmanager
def quiet_native_stderr() -> Iterator[None]:
    """Keep LiteRT's native log lines off the process's stderr.

    LiteRT writes ``INFO: Created TensorFlow Lite XNNPACK delegate for CPU.``
    (and ``ERROR: ...`` lines on a rejected model) from C++ straight to file
    descriptor 2 when an interpreter is created. Its Python API has no switch
    for that logger: ``TF_CPP_MIN_LOG_LEVEL`` does not reach TFLite's
    ``MinimalLogger`` and ``LiteRtSetMinLoggerSeverity`` is not exported by
    the wheel (ai-edge-litert 2.3). So, as a last resort, fd 2 is redirected
    to a temporary file around the interpreter's creation only; what LiteRT
    wrote is re-logged on the ``unified`` logger at DEBUG. When that logger is
    at DEBUG, nothing is redirected and LiteRT prints as usual. The redirect
    is process-wide for its few milliseconds; a lock keeps two of them from
    nesting.
    """
    if logging.getLogger("unified").isEnabledFor(logging.DEBUG):
        yield
        return
    import sys

    with _FD2_LOCK, tempfile.TemporaryFile() as sink:
        with contextlib.suppress(Exception):
            sys.stderr.flush()
        saved = os.dup(2)
        try:
            os.dup2(sink.fileno(), 2)
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            text = sink.read().decode("utf-8", "replace").strip()
            if text:
                log.debug("LiteRT: %s", text)
