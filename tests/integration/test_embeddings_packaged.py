"""The acceptance check on the real model: bootstrap publishes the packaged all-MiniLM-L6-v2
as `embedding`, and the official OpenAI client (base64, its default, and float) gets the
vectors sentence-transformers computes for it. Slow (one export, ~40 s on 2 cores)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import openai

from app.store.versions import ModelStore
from app.training.base_model import packaged_model_dir
from app.training.bootstrap import run_bootstrap
from app.training.embedding.publish import PARITY_TEXTS
from tests.integration.conftest import run, running, settings_for

TEXTS = [*PARITY_TEXTS, "A different sentence, not among the parity texts at all."]


def test_openai_client_gets_sentence_transformers_vectors_from_the_bootstrapped_model(
    tmp_path: Path,
) -> None:
    from sentence_transformers import SentenceTransformer

    recipe = tmp_path / "recipes" / "embedding"
    recipe.mkdir(parents=True)
    (recipe / "recipe.json").write_text(
        '{"name": "embedding", "task": "embedding", "base_model": "packaged", "int8": false}'
    )
    store = ModelStore(tmp_path / "models")

    (manifest,) = run_bootstrap(store, tmp_path / "recipes")

    assert (manifest.task, manifest.dimension, manifest.pooling) == ("embedding", 384, "mean")
    assert store.active_version("embedding") == 1
    reference = SentenceTransformer(packaged_model_dir(), device="cpu").encode(
        TEXTS, convert_to_numpy=True, normalize_embeddings=True
    )

    async def main() -> None:
        async with running(settings_for(store, model_variant="fp32")) as (client, _):
            sdk = openai.AsyncOpenAI(
                base_url="http://textserve/v1",
                api_key="x",
                http_client=client,  # type: ignore[arg-type]
                max_retries=0,
            )
            # Left out, the SDK asks for base64 and decodes it; then floats, asked for.
            default = await sdk.embeddings.create(model="embedding", input=TEXTS)
            floats = await sdk.embeddings.create(
                model="embedding", input=TEXTS, encoding_format="float"
            )
            for fmt, answer in (("base64", default), ("float", floats)):
                got = np.array([d.embedding for d in answer.data], dtype=np.float64)
                cosines = (got * reference).sum(axis=1) / np.linalg.norm(got, axis=1)
                assert cosines.min() >= 0.999, (fmt, cosines)

    run(main)
