"""Knowledge bases: vector storage and metadata (app/knowledge).

One section of ``app.config.Settings``, which composes the sections; fields read
``TEXTSERVE_<FIELD>`` there.
"""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings


class KnowledgeSettings(BaseSettings):
    """Knowledge bases: vector storage and metadata (app/knowledge)."""

    # -- knowledge bases (app/knowledge) -----------------------------------------------------
    vector_url: str | None = Field(
        None,
        description="Vector store of knowledge bases: empty for the local store in data_dir/"
        "vectors (one replica); a Qdrant URL (http://qdrant:6333) when replicas share vectors; "
        "`:memory:` or `file:<path>` for qdrant-client's local mode.",
    )
    vector_api_key: SecretStr | None = Field(
        None, description="API key sent to Qdrant (TEXTSERVE_VECTOR_URL), if it needs one."
    )
    vector_ann_min_chunks: int = Field(
        200_000,
        ge=0,
        description="Local store: a collection of at least this many chunks is searched "
        "through an approximate (IVF) index instead of exactly (0: always exact).",
    )
    knowledge_db_url: str | None = Field(
        None,
        description="SQLAlchemy URL of the knowledge-base metadata database (default: SQLite "
        "in data_dir; PostgreSQL when replicas share it).",
    )
