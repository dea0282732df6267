"""/docs and /redoc work behind a firewall: every asset they load comes from the service itself."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from app.config import Settings
from app.main import create_app

BASE = "http://textserve"
# Where a page names a URL to load: tag attributes, and Swagger UI's config in its inline script.
URL_ATTRIBUTES = {"src", "href"}
ANY_URL = re.compile(r"""(?:https?:)?//[^\s'"<>)]+""")
EXPECTED_TYPES = {
    ".js": ("text/javascript", "application/javascript"),
    ".css": ("text/css",),
    ".png": ("image/png",),
    ".json": ("application/json",),
}


class Links(HTMLParser):
    """Every src/href in a page, and the text of its inline scripts."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.urls += [v for k, v in attrs if k in URL_ATTRIBUTES and v is not None]
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.scripts.append(data)


def settings(tmp_path: Path, *, docs: bool = True) -> Settings:
    return Settings(
        model_store=tmp_path / "models", data_dir=tmp_path / "var", ray_address=None, docs=docs
    )


@asynccontextmanager
async def client_for(config: Settings, root_path: str = "") -> AsyncIterator[httpx.AsyncClient]:
    # The pages need no model: no lifespan, so nothing is loaded or started.
    transport = httpx.ASGITransport(app=create_app(config), root_path=root_path)
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
        yield client


def same_origin(url: str) -> bool:
    parts = urlsplit(url)
    return (not parts.scheme and not parts.netloc) or f"{parts.scheme}://{parts.netloc}" == BASE


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_the_api_pages_load_every_asset_from_the_service(tmp_path: Path, page: str) -> None:
    async def main() -> None:
        async with client_for(settings(tmp_path)) as client:
            answer = await client.get(page)
            assert answer.status_code == 200
            assert answer.headers["content-type"].startswith("text/html")
            links = Links()
            links.feed(answer.text)
            assert links.urls, "the page names no asset"
            inline = [m.group(0) for s in links.scripts for m in ANY_URL.finditer(s)]
            foreign = [u for u in links.urls + inline if not same_origin(u)]
            assert foreign == [], f"{page} loads from another host"
            # The script and the style sheet the page is made of, and the spec it renders.
            script_srcs = [u for u in links.urls if u.endswith(".js")]
            assert script_srcs, "no script of the page's own"
            for url in [*links.urls, "/openapi.json"]:
                asset = await client.get(url)
                assert asset.status_code == 200, url
                suffix = Path(urlsplit(url).path).suffix
                assert asset.headers["content-type"].startswith(EXPECTED_TYPES[suffix]), url
                assert len(asset.content) > 100, url

    asyncio.run(main())


def test_swagger_ui_does_not_call_the_online_validator(tmp_path: Path) -> None:
    async def main() -> None:
        async with client_for(settings(tmp_path)) as client:
            page = (await client.get("/docs")).text
        # Swagger UI's default sends the spec's address to swagger.io for a badge.
        assert '"validatorUrl": null' in page

    asyncio.run(main())


def test_behind_a_path_prefix_the_pages_link_under_it(tmp_path: Path) -> None:
    async def main() -> None:
        async with client_for(settings(tmp_path), root_path="/textserve") as client:
            for page in ("/docs", "/redoc"):
                links = Links()
                links.feed((await client.get(page)).text)
                assert links.urls
                assert all(u.startswith("/textserve/") for u in links.urls), links.urls

    asyncio.run(main())


def test_docs_off_removes_the_pages_and_their_assets(tmp_path: Path) -> None:
    async def main() -> None:
        async with client_for(settings(tmp_path, docs=False)) as client:
            for path in (
                "/docs",
                "/redoc",
                "/openapi.json",
                "/docs/oauth2-redirect",
                "/docs-assets/swagger-ui-bundle.js",
            ):
                assert (await client.get(path)).status_code == 404, path

    asyncio.run(main())


def test_the_oauth2_redirect_page_stays_where_swagger_ui_expects_it(tmp_path: Path) -> None:
    async def main() -> None:
        async with client_for(settings(tmp_path)) as client:
            answer = await client.get("/docs/oauth2-redirect")
        assert answer.status_code == 200
        links = Links()
        links.feed(answer.text)
        assert all(same_origin(u) for u in links.urls)

    asyncio.run(main())


def test_asset_requests_are_counted_under_their_mount_not_as_unmatched(tmp_path: Path) -> None:
    async def main() -> None:
        async with client_for(settings(tmp_path)) as client:
            assert (await client.get("/docs-assets/swagger-ui.css")).status_code == 200
            metrics = (await client.get("/metrics")).text
        assert 'route="/docs-assets",status="200"' in metrics
        assert 'route="unmatched"' not in metrics

    asyncio.run(main())
