"""Content-addressed compile cache.

An entry is one file, ``<root>/v1/<key[:2]>/<key>.entry``: a JSON header line
(schema version, payload SHA-256 and size, delegate, version) followed by the
payload (a delegate's serialized executable). Writes go to a temporary file
in the same directory and are moved into place with ``os.replace``, so a
reader never sees half an entry. Reads verify size and hash; an entry that
fails is deleted and reported as a miss, never used.

The key is the SHA-256 of: cache schema version, partition model bytes,
delegate name and version, backend and compile options (canonical JSON).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any, Mapping

from unified.errors import CacheError

__all__ = ["CompileCache", "CACHE_SCHEMA_VERSION", "default_cache_dir", "CacheWarning"]

CACHE_SCHEMA_VERSION = 1


class CacheWarning(UserWarning):
    """A cache entry was corrupt and has been discarded."""


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/unified``, else ``~/.cache/unified``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "unified"


class CompileCache:
    """A directory of compiled artifacts keyed by content.

    Args:
        root: the cache directory (created on first write).
    """

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.hits = 0
        self.misses = 0

    @staticmethod
    def key(
        partition_bytes: bytes, delegate: str, version: str, backend: str, options: Mapping[str, Any]
    ) -> str:
        """The SHA-256 hex key of one compilation."""
        h = hashlib.sha256()
        meta = {"schema": CACHE_SCHEMA_VERSION, "delegate": delegate, "version": version, "backend": backend}
        h.update(json.dumps(meta, sort_keys=True).encode())
        h.update(json.dumps(dict(options), sort_keys=True, default=repr).encode())
        h.update(partition_bytes)
        return h.hexdigest()

    def path(self, key: str) -> Path:
        """The directory of cache entry ``key`` (it may not exist)."""
        return self.root / f"v{CACHE_SCHEMA_VERSION}" / key[:2] / f"{key}.entry"

    def get(self, key: str) -> bytes | None:
        """The payload stored under ``key``, or None (missing or corrupt)."""
        path = self.path(key)
        try:
            blob = path.read_bytes()
        except FileNotFoundError:
            self.misses += 1
            return None
        except OSError as exc:
            warnings.warn(f"compile cache entry {path} unreadable ({exc}); recompiling", CacheWarning, stacklevel=2)
            self.misses += 1
            return None
        payload = _verify(blob)
        if payload is None:
            warnings.warn(
                f"compile cache entry {path} is corrupt (bad header, size or SHA-256); discarded and recompiling",
                CacheWarning,
                stacklevel=2,
            )
            try:
                path.unlink()
            except OSError:
                pass
            self.misses += 1
            return None
        self.hits += 1
        return payload

    def put(self, key: str, payload: bytes, meta: Mapping[str, Any] | None = None) -> Path:
        """Store ``payload`` atomically.

        Raises:
            CacheError: the directory is not writable.
        """
        path = self.path(key)
        header = {
            "schema": CACHE_SCHEMA_VERSION,
            "sha256": hashlib.sha256(payload).hexdigest(),
            "size": len(payload),
            **dict(meta or {}),
        }
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".entry")
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(json.dumps(header, sort_keys=True).encode() + b"\n")
                    f.write(payload)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, path)
            except BaseException:
                try:
                    os.unlink(tmp)
                except OSError:
                    pass
                raise
        except OSError as exc:
            raise CacheError(f"cannot write compile cache entry under '{self.root}': {exc}; "
                             "pass another cache_dir or set use_cache=False") from None
        return path


def _verify(blob: bytes) -> bytes | None:
    nl = blob.find(b"\n")
    if nl < 0:
        return None
    try:
        header = json.loads(blob[:nl])
    except ValueError:
        return None
    if not isinstance(header, dict) or header.get("schema") != CACHE_SCHEMA_VERSION:
        return None
    payload = blob[nl + 1 :]
    if len(payload) != header.get("size") or hashlib.sha256(payload).hexdigest() != header.get("sha256"):
        return None
    return payload
