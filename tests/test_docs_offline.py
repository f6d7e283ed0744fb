"""`/docs` and `/redoc` work with no internet: the pages reference only this server, and every script,
stylesheet and icon they reference is served by it."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from domain.config import Settings, load_config
from incidentflow.api import create_app

EXAMPLE = Path(__file__).parent.parent / "config/example.yaml"
TYPES = {"js": "javascript", "css": "text/css", "png": "image/png", "json": "application/json"}
URL = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']|\burl:\s*["']([^"']+)["']|spec-url=["']([^"']+)["']""")


def api() -> httpx.AsyncClient:
    app = create_app(Settings(), None, load_config(EXAMPLE))  # no Temporal needed to read the docs
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api")


@pytest.mark.parametrize("page, assets", [
    ("/docs", {"swagger-ui-bundle.js", "swagger-ui.css", "favicon.png"}),
    ("/redoc", {"redoc.standalone.js", "favicon.png"}),
])
async def test_the_docs_pages_load_everything_from_this_server(page: str, assets: set[str]) -> None:
    async with api() as http:
        answer = await http.get(page)
        assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/html")
        assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", answer.text, flags=re.I), \
            "no remote URL: the page must render offline"
        urls = {next(g for g in m.groups() if g) for m in URL.finditer(answer.text)}
        assert "/openapi.json" in urls and {u.rsplit("/", 1)[-1] for u in urls} >= assets
        for url in urls:
            assert url.startswith("/"), url
            served = await http.get(url)
            assert served.status_code == 200 and served.content, url
            assert TYPES[url.rsplit(".", 1)[-1]] in served.headers["content-type"], url


async def test_swagger_ui_reaches_for_no_validator_badge() -> None:
    async with api() as http:
        assert '"validatorUrl": null' in (await http.get("/docs")).text
        assert (await http.get("/docs/oauth2-redirect")).status_code == 200


async def test_the_docs_stay_out_of_the_api_schema() -> None:
    async with api() as http:
        paths = (await http.get("/openapi.json")).json()["paths"]
    assert not [p for p in paths if p.startswith(("/docs", "/redoc"))]
