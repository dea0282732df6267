"""GET /v1/models and /v1/models/{name}: readable by OpenAI-style clients too."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter

from app.api.deps import ServicesDep
from app.api.schemas import ErrorResponse, ModelCard, ModelList, ModelVersionInfo
from app.errors import CorruptModel, ModelNotFound
from app.service import Services
from app.store.manifest import Manifest, check_name

router = APIRouter(prefix="/v1/models", tags=["models"])


def _epoch(iso: str) -> int:
    try:
        return int(datetime.fromisoformat(iso).timestamp())
    except ValueError:
        return 0


def model_card(services: Services, name: str) -> ModelCard:
    store = services.store
    manifests: list[Manifest] = []
    for version in store.versions(name):
        try:
            manifests.append(store.read_manifest(name, version))
        except CorruptModel:
            continue  # listed by the store but unreadable: not offered to clients
    if not manifests:
        raise ModelNotFound(f"no model named {name!r}")
    active = store.active_version(name)
    engine = services.registry.active_engines().get(name)
    current = next((m for m in manifests if m.version == active), manifests[-1])
    return ModelCard(
        id=name,
        created=_epoch(current.created_at),
        task=current.task,
        labels=current.labels,
        active_version=active,
        loaded_version=engine.version if engine else None,
        provider=engine.provider if engine else None,
        variant=engine.variant if engine else None,
        variant_note=engine.variant_note if engine else None,
        metrics=current.metrics,
        versions=[
            ModelVersionInfo(
                version=m.version,
                created_at=m.created_at,
                task=m.task,
                labels=m.labels,
                base_model=m.base_model,
                max_seq_length=m.max_seq_length,
                metrics=m.metrics,
                variants={k: v.model_dump() for k, v in m.variants.items()},
            )
            for m in manifests
        ],
    )


@router.get("", response_model=ModelList)
async def list_models(services: ServicesDep) -> ModelList:
    """Every model in the store, its versions, the active one and where it runs."""
    return ModelList(data=[model_card(services, n) for n in services.store.names()])


@router.get("/{name}", response_model=ModelCard, responses={404: {"model": ErrorResponse}})
async def get_model(name: str, services: ServicesDep) -> ModelCard:
    """One model by name."""
    return model_card(services, check_name(name))
