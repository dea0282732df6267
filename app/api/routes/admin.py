"""The admin routes in one router: data sets, fine-tunes, promotion and rollback.

Grouped so that access control (API keys with an admin scope) is added in one place,
as a dependency of this router.
"""

from __future__ import annotations

from fastapi import APIRouter

from app.api.routes import files, fine_tunes, fine_tuning, model_admin

router = APIRouter()
for _sub in (files.router, fine_tunes.router, fine_tuning.router, model_admin.router):
    router.include_router(_sub)
