"""Which ONNX file of a version to load: fp32, or int8 / fp16 where faster and as accurate.

The ``model_variant`` setting decides: ``fp32``, ``int8`` and ``fp16`` ask for that file, ``auto``
(the default) picks int8 on the CPU execution provider and fp16 on CUDA, when the version
has that variant and its recorded held-out accuracy is within ``AUTO_MAX_ACCURACY_DROP`` of
fp32's, else fp32. Dynamic int8 quantization is tuned for CPU kernels (VNNI, AMX); a GPU
gets its speed from half precision on its tensor cores instead.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

import onnxruntime as ort

from app.runtime.backend import CPU, CUDA, LoadedSession, SessionOptions, create_session
from app.store.manifest import FP16, FP32, INT8, Manifest

log = logging.getLogger(__name__)

VariantSetting = Literal["auto", "fp32", "int8", "fp16"]
# "Within 1 point": accuracy is a fraction, so one percentage point. The small slack keeps
# a drop of exactly one point (e.g. 0.90 vs 0.89, stored as binary floats) inside it.
AUTO_MAX_ACCURACY_DROP = 0.01 + 1e-9


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


__all__ = [
    "AUTO_MAX_ACCURACY_DROP",
    "VariantSetting",
    "choose_variant",
    "expected_provider",
    "load_variant",
]
