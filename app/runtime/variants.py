"""Which ONNX file of a version to load: fp32, or int8 / fp16 where faster and as accurate.

The ``model_variant`` setting decides: ``fp32``, ``int8`` and ``fp16`` ask for that file, ``auto``
(the default) picks int8 on the CPU execution provider and fp16 on CUDA, when the version
has that variant and its recorded held-out accuracy is within ``AUTO_MAX_ACCURACY_DROP`` of
fp32's, else fp32. Dynamic int8 quantization is tuned for CPU kernels (VNNI, AMX); a GPU
gets its speed from half precision on its tensor cores instead.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Literal

import numpy as np
import onnxruntime as ort

from app.runtime.backend import (
    CPU,
    CUDA,
    LoadedSession,
    SessionOptions,
    create_session,
    score_texts,
)
from app.runtime.tokenizer import TextTokenizer
from app.store.manifest import FP16, FP32, INT8, Manifest

log = logging.getLogger(__name__)

VariantSetting = Literal["auto", "fp32", "int8", "fp16"]
# "Within 1 point": accuracy is a fraction, so one percentage point. The small slack keeps
# a drop of exactly one point (e.g. 0.90 vs 0.89, stored as binary floats) inside it.
AUTO_MAX_ACCURACY_DROP = 0.01 + 1e-9
# A classifier version's held-out rows ({"texts": [...], "labels": [index, ...]}), kept so that
# the ``auto`` gate can be measured again where the file really runs (``remeasure_gate``).
GATE_FILE = "gate_rows.json"


def expected_provider(options: SessionOptions) -> str:
    """The provider ``create_session`` will try first: the first wanted one ORT offers here."""
    available = set(ort.get_available_providers())
    return next((p for p in options.providers if p in available), CPU)


def choose_variant(manifest: Manifest, setting: VariantSetting, provider: str) -> str:
    """The variant of ``manifest`` to load under ``setting`` on ``provider``."""
    files = manifest.variant_files()
    if setting == FP32:
        return FP32
    if setting in (INT8, FP16):
        if setting in files:
            return setting
        # Older versions and reply models have no such file: serve them rather than refuse.
        log.warning(
            "%s@%s has no %s variant; loading fp32", manifest.name, manifest.version, setting
        )
        return FP32
    # auto: int8 for CPU kernels, fp16 for GPUs, each only where it scored as well as fp32.
    faster = INT8 if provider == CPU else FP16 if provider == CUDA else None
    if faster is None or faster not in files:
        return FP32
    fast, fp32 = manifest.variant_accuracy(faster), manifest.variant_accuracy(FP32)
    if fast is None or fp32 is None:
        return FP32  # nothing says the faster file is as good: do not guess
    return faster if fp32 - fast <= AUTO_MAX_ACCURACY_DROP else FP32


def load_variant(
    folder: Path, manifest: Manifest, options: SessionOptions, setting: VariantSetting
) -> tuple[LoadedSession, str]:
    """Open the chosen variant's file; returns the session and the variant's name."""
    variant = choose_variant(manifest, setting, expected_provider(options))
    loaded = create_session(folder / manifest.variant_files()[variant], options)
    if loaded.provider != expected_provider(options):
        # The preferred provider failed to start (a CUDA build without a usable device):
        # choose again for where the session really runs.
        again = choose_variant(manifest, setting, loaded.provider)
        if again != variant:
            variant = again
            loaded = create_session(folder / manifest.variant_files()[variant], options)
    return loaded, variant


def remeasure_gate(
    folder: Path, manifest: Manifest, loaded: LoadedSession, variant: str
) -> tuple[bool, str]:
    """The ``auto`` gate measured again with ``loaded``, the session that will serve.

    The recorded fp16 accuracy was scored on the CPU provider at export; CUDA's fp16 kernels
    round differently. Returns (passed, what was measured); passes where nothing can be
    measured (no held-out rows kept, no fp32 figure, a model without logits).
    """
    rows = folder / GATE_FILE
    fp32 = manifest.variant_accuracy(FP32)
    if not rows.is_file() or fp32 is None:
        return True, "not re-measured: no held-out rows kept with this version"
    held = json.loads(rows.read_text())
    texts, labels = list(held["texts"]), np.asarray(held["labels"])
    tokenizer = TextTokenizer(
        folder / manifest.tokenizer_file, manifest.max_seq_length, manifest.pad_token_id
    )
    (logits,) = score_texts(loaded, tokenizer, texts, [loaded.output_names[0]])
    accuracy = float((logits.argmax(axis=1) == labels).mean())
    passed = fp32 - accuracy <= AUTO_MAX_ACCURACY_DROP
    verdict = "kept" if passed else "fell back to fp32"
    return passed, (
        f"{variant} on {loaded.provider}: accuracy {accuracy:.4f} on {len(texts)} held-out rows "
        f"against fp32's {fp32:.4f}; {verdict}"
    )


def load_checked_variant(
    folder: Path,
    manifest: Manifest,
    options: SessionOptions,
    setting: VariantSetting,
    *,
    force: bool = False,
) -> tuple[LoadedSession, str, str | None]:
    """``load_variant``, then under ``auto`` on CUDA (or ``force``: any provider, for tests and
    rehearsals) the gate re-measured on the loaded session; fp32 when it fails. Returns the
    session, the variant and what the re-measure found (None when it did not run)."""
    loaded, variant = load_variant(folder, manifest, options, setting)
    if setting != "auto" or variant == FP32 or not (force or loaded.provider == CUDA):
        return loaded, variant, None
    passed, note = remeasure_gate(folder, manifest, loaded, variant)
    log.info("%s@%s: %s", manifest.name, manifest.version, note)
    if not passed:
        loaded, variant = create_session(folder / manifest.variant_files()[FP32], options), FP32
    return loaded, variant, note


__all__ = [
    "AUTO_MAX_ACCURACY_DROP",
    "GATE_FILE",
    "VariantSetting",
    "choose_variant",
    "expected_provider",
    "load_checked_variant",
    "load_variant",
    "remeasure_gate",
]
