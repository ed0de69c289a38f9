"""Content-addressed on-disk cache for exported / optimised / built artefacts.

An artefact ``<dir>/<stem>.<ext>`` is written atomically together with ``<dir>/<stem>.<ext>.json``, a sidecar
holding the artefact's SHA-256 and the metadata its key was built from. `lookup` only returns an artefact
whose bytes hash to the recorded value and whose key matches; a corrupt, truncated or mismatched file is
reported (reason string) and must be rebuilt, never used. Re-running an export with the same inputs is a
cache hit and writes nothing.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from augpaint_fast.atomic import atomic_write, atomic_write_text

# Bump when the export code changes what it writes: old cache entries then miss.
EXPORTER_VERSION = "augpaint-fast-export-1"


def default_cache_dir() -> Path:
    """``$AUGPAINT_FAST_CACHE`` or ``~/.cache/augpaint_fast``."""
    env = os.environ.get("AUGPAINT_FAST_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "augpaint_fast"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def module_sha256(module: nn.Module) -> str:
    """SHA-256 over a module's state dict: names, dtypes, shapes and float32/int bytes, in name order."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        # fresh dense strides whatever the layout (channels_last 1x1 weights report contiguous with odd strides)
        t = torch.empty(tensor.shape, dtype=tensor.dtype).copy_(tensor.detach())
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}\0".encode())
        digest.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()


def key_of(**parts: Any) -> str:
    """Stable hex key of JSON-able parts."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def lookup(path: Path, key: str) -> tuple[bool, str]:
    """(True, "") when ``path`` exists, its sidecar records ``key`` and its bytes hash to the recorded value;
    else (False, why)."""
    path = Path(path)
    if not path.exists():
        return False, "not cached"
    meta_path = sidecar(path)
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return False, f"unreadable sidecar {meta_path.name} ({type(exc).__name__})"
    if meta.get("key") != key:
        return False, "key mismatch (weights, config, exporter or runtime changed)"
    if meta.get("sha256") != file_sha256(path):
        return False, "hash mismatch (corrupt or modified file)"
    return True, ""


def store(path: Path, key: str, write: Callable[[Path], None], **meta: Any) -> str:
    """Write the artefact with ``write(tmp_path)`` then its sidecar, both atomically; returns its SHA-256."""
    path = Path(path)
    atomic_write(path, write)
    sha = file_sha256(path)
    text = json.dumps({"key": key, "sha256": sha, **meta}, indent=2, sort_keys=True, default=str) + "\n"
    atomic_write_text(sidecar(path), text)
    return sha


def read_meta(path: Path) -> dict:
    return json.loads(sidecar(Path(path)).read_text(encoding="utf-8"))
