"""Load a converted model with the class its checkpoint really is, quietly.

A causal language model (``*ForCausalLM``, ``*LMHeadModel``) loads with its LM head.
Anything else (BERT-style encoders, sentence-transformers checkpoints, bare decoder
bodies) loads as the bare model (``AutoModel``): loading it through a head class would
invent head weights ("newly initialized") and the store would then record an
unembedding the checkpoint does not have. A causal checkpoint whose untied LM head is
missing is loaded as its bare body for the same reason.

transformers' load reports and warnings never reach the terminal; what matters is said
in one line through ``report``.
"""

from __future__ import annotations

import contextlib
import json
import warnings
from pathlib import Path
from typing import Any, Iterator

from explorer.core.types import Report
from explorer.errors import UnknownModel

CAUSAL_SUFFIXES = ("ForCausalLM", "LMHeadModel")
# weights a bare encoder may lack without changing any hidden state
_UNUSED = ("pooler.",)


@contextlib.contextmanager
def quiet(progress_bars: bool = False) -> Iterator[None]:
    """Silence transformers' logging (load reports, advice) and Python warnings."""
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    if not progress_bars:
        hf_logging.disable_progress_bar()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()


def read_config(directory: Path) -> dict:
    try:
        return json.loads((Path(directory) / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UnknownModel(f"cannot read {directory}/config.json: {str(exc).splitlines()[0]}") from None


def check_dir(directory: Path) -> None:
    """Cheap checks before a load: config.json names a model type transformers knows, and
    every safetensors file has a readable header whose tensors fit the file."""
    directory = Path(directory)
    config = read_config(directory)
    kind = config.get("model_type") if isinstance(config, dict) else None
    if not kind:
        raise UnknownModel(f"{directory}/config.json names no model_type; it is not a Hugging Face model config")
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES

    if kind not in CONFIG_MAPPING_NAMES:
        raise UnknownModel(f"{directory}: model type {kind!r} is unknown to this transformers (remote code is refused)")
    files = sorted(directory.glob("*.safetensors"))
    if not files:
        raise UnknownModel(f"{directory} has no .safetensors weights (pickle checkpoints are refused)")
    from safetensors import safe_open

    for f in files:
        try:
            with safe_open(str(f), "np"):
                pass
        except Exception as exc:  # SafetensorError: bad header, or tensors past the end of the file
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:120]
            raise UnknownModel(f"{f} is not a readable safetensors file ({first})") from None


def is_causal(config: dict) -> bool:
    """Does the checkpoint's own config name a causal LM class?"""
    archs = config.get("architectures") or []
    if archs:
        return any(str(a).endswith(CAUSAL_SUFFIXES) for a in archs)
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES, MODEL_FOR_MASKED_LM_MAPPING_NAMES

    kind = config.get("model_type")  # no architectures: BERT-likes are in both maps; decoders only in the first
    return kind in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES and (kind not in MODEL_FOR_MASKED_LM_MAPPING_NAMES or bool(config.get("is_decoder")))


def _head_missing(model: Any, missing: list[str]) -> bool:
    """Was the (untied) output embedding invented by transformers rather than loaded?"""
    out = model.get_output_embeddings()
    if out is None or getattr(out, "weight", None) is None:
        return False
    if out.weight is model.get_input_embeddings().weight:
        return False  # tied: it is the (loaded) input embedding
    names = {n for n, p in model.named_parameters(remove_duplicate=False) if p is out.weight}
    return bool(names & set(missing))


def load_tokenizer(directory: Path):
    """The model's tokenizer alone (seconds, where the weights take longer): enough to check
    input before the weights load."""
    from transformers import AutoTokenizer

    try:
        with quiet():
            return AutoTokenizer.from_pretrained(str(directory), trust_remote_code=False, local_files_only=True)
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UnknownModel(f"cannot load the tokenizer in {directory}: {first}") from None


def load_model(directory: Path, report: Report = lambda s: None, tokenizer: Any = None):
    """(model, tokenizer) in float32 from safetensors, eval mode, no remote code; ``tokenizer``
    if one was already loaded (:func:`load_tokenizer`)."""
    import torch
    from transformers import AutoModel, AutoModelForCausalLM, AutoTokenizer

    directory = Path(directory)
    config = read_config(directory)
    kw = dict(dtype=torch.float32, use_safetensors=True, trust_remote_code=False, local_files_only=True, output_loading_info=True)
    try:
        with quiet():
            if is_causal(config):
                model, info = AutoModelForCausalLM.from_pretrained(str(directory), **kw)
                if _head_missing(model, info["missing_keys"]):
                    report(f"{directory.name}: the checkpoint has no LM head weights; loading its body only (no unembedding)")
                    model, info = AutoModel.from_pretrained(str(directory), **kw)
            else:
                model, info = AutoModel.from_pretrained(str(directory), **kw)
            tok = tokenizer if tokenizer is not None else AutoTokenizer.from_pretrained(
                str(directory), trust_remote_code=False, local_files_only=True)
    except Exception as exc:  # OSError, ValueError, safetensors and shape errors: the files are not a usable model
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UnknownModel(f"cannot load the model in {directory}: {first}") from None
    missing = [k for k in info["missing_keys"] if not k.startswith(_UNUSED)]
    if missing:
        shown = ", ".join(sorted(missing)[:3]) + (", ..." if len(missing) > 3 else "")
        report(f"{directory.name}: {len(missing)} weight(s) missing from the checkpoint were initialised randomly ({shown})")
    model.eval()
    return model, tok
