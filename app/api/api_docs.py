"""The API's description pages, ``/docs`` (Swagger UI) and ``/redoc`` (ReDoc), served offline.

FastAPI's own pages load their JavaScript, CSS, favicon and (ReDoc) fonts from public CDNs, so
a user behind a firewall sees a blank page. Here the same pages load every asset from this
service: the files come from the installed ``fastapi-offline`` wheel (Swagger UI and ReDoc
bundles, MIT-licensed), mounted read-only at ``ASSETS_PATH``. Nothing is vendored in the repo.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path
from types import SimpleNamespace

from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send

DOCS_PATH = "/docs"
REDOC_PATH = "/redoc"
ASSETS_PATH = "/docs-assets"
# The package's own file names; tests/integration/test_api_docs.py fetches each one.
SWAGGER_JS = "swagger-ui-bundle.js"
SWAGGER_CSS = "swagger-ui.css"
REDOC_JS = "redoc.standalone.js"
FAVICON = "favicon.png"

# Swagger UI's default ``validatorUrl`` sends the spec's URL to swagger.io and shows a badge
# image from there: another host, and a leak of an internal address. Off.
_SWAGGER_PARAMETERS = {"validatorUrl": None}


def asset_dir() -> Path:
    """The folder of the installed Swagger UI and ReDoc bundles."""
    return Path(str(files("fastapi_offline").joinpath("static")))


def install_api_docs(app: FastAPI, openapi_url: str) -> None:
    """Serve ``/docs``, its OAuth2 redirect page, ``/redoc`` and their assets from this app."""
    app.mount(ASSETS_PATH, _Assets(ASSETS_PATH, asset_dir()), name="docs-assets")
    router = APIRouter(include_in_schema=False)
    oauth2_redirect = app.swagger_ui_oauth2_redirect_url or f"{DOCS_PATH}/oauth2-redirect"
    parameters = {**_SWAGGER_PARAMETERS, **(app.swagger_ui_parameters or {})}

    @router.get(DOCS_PATH)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = _root(request)
        return get_swagger_ui_html(
            openapi_url=root + openapi_url,
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{root}{ASSETS_PATH}/{SWAGGER_JS}",
            swagger_css_url=f"{root}{ASSETS_PATH}/{SWAGGER_CSS}",
            swagger_favicon_url=f"{root}{ASSETS_PATH}/{FAVICON}",
            oauth2_redirect_url=root + oauth2_redirect,
            swagger_ui_parameters=parameters,
        )

    @router.get(oauth2_redirect)
    async def swagger_ui_oauth2_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @router.get(REDOC_PATH)
    async def redoc(request: Request) -> HTMLResponse:
        root = _root(request)
        return get_redoc_html(
            openapi_url=root + openapi_url,
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{ASSETS_PATH}/{REDOC_JS}",
            redoc_favicon_url=f"{root}{ASSETS_PATH}/{FAVICON}",
            with_google_fonts=False,
        )

    app.include_router(router)


class _Assets(StaticFiles):
    """The bundles, naming their mount as the request's route, as FastAPI's routes do.

    The HTTP metrics and the access log label a request by ``scope["route"].path``; a mount
    sets none, so asset requests would read ``route="unmatched"`` beside real 404s.
    """

    def __init__(self, path: str, directory: Path) -> None:
        super().__init__(directory=directory)
        self._route = SimpleNamespace(path=path)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope["route"] = self._route
        await super().__call__(scope, receive, send)


def _root(request: Request) -> str:
    # Behind a proxy that strips a prefix (uvicorn --root-path), links must carry it.
    return str(request.scope.get("root_path", "")).rstrip("/")
