"""Subscribing from the status page without JavaScript, over HTTP: the page's form posts urlencoded to
`POST /status/subscribe` (the same door as JSON: a confirmation mail, only confirmed addresses get mail, errors
name the field) and gets a small page back; the RFC 8058 one-click `POST /status/unsubscribe?token=…` a mail
client sends stops the mail."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from domain.settings import Settings
from incidentflow.api import create_app
from tests.conftest import serve_api
from tests.fakes.smtp import SmtpServer
from tests.helpers import uvicorn_serving
from tests.test_statuspage_api import LINK, config, eventually

HTML = "text/html"
FORM = {"content-type": "application/x-www-form-urlencoded"}


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with SmtpServer() as server:
        yield server


def mail_to(smtp: SmtpServer, to: str, subject: str = "") -> list[object]:
    return [m for m in smtp.messages()
            if to in [r.lower() for r in m.recipients] and subject in str(m.message["Subject"])]


async def arrives(smtp: SmtpServer, to: str, subject: str = "") -> object:
    async def check() -> object:
        found = mail_to(smtp, to, subject)
        return found[0] if found else None
    return await eventually(check)


def text_of(mail: object) -> str:
    return str(mail.message.get_body(("plain",)).get_content())  # type: ignore[attr-defined]


async def test_the_page_form_subscribes_and_one_click_unsubscribes(dev_env: WorkflowEnvironment, tmp_path: Path,
                                                                  smtp: SmtpServer) -> None:
    async with serve_api(dev_env, config=config(), data_dir=tmp_path, smtp_url=smtp.url()) as url, \
            httpx.AsyncClient(base_url=url, timeout=30) as api:
        page = await api.get("/status")
        assert page.status_code == 200
        assert '<form method="post" action="/status/subscribe">' in page.text
        assert 'type="email" name="email"' in page.text and 'name="components" value="checkout"' in page.text

        # what a browser sends for the form: urlencoded, one `components` per ticked box
        sent = await api.post("/status/subscribe", data={"email": " Ann@Example.com ",
                                                         "components": ["checkout", "login"]})
        assert sent.status_code == 202 and sent.headers["content-type"].startswith(HTML), sent.text
        assert "Check your mail" in sent.text and "Ann@Example.com" in sent.text and "<script" not in sent.text
        confirm_mail = await arrives(smtp, "ann@example.com", "Confirm")
        assert "about Checkout, Sign-in at" in text_of(confirm_mail)  # the ticked components, by name

        for data, named in (({"email": "not-an-address"}, "email: not an address"), ({"email": ""}, "email: must be"),
                            ({"email": "b@example.com", "components": "mars"}, "components: unknown mars")):
            refused = await api.post("/status/subscribe", data=data)
            assert refused.status_code == 422 and refused.headers["content-type"].startswith(HTML), refused.text
            assert "Not subscribed" in refused.text and named in refused.text
            assert "<a href='/status'>Back to the status page</a>" in refused.text
        assert not mail_to(smtp, "b@example.com")

        unconfirmed = await api.post("/status/subscribe", json={"email": "carl@example.com"})  # JSON as before
        assert unconfirmed.status_code == 202 and unconfirmed.json() == {"outcome": "confirmation_sent",
                                                                          "components": []}
        bad_json = await api.post("/status/subscribe", content=b'{"email": ', headers={"content-type": "application/json"})
        assert bad_json.status_code == 400 and "line 1, column 11" in bad_json.json()["error"]
        curl_d = await api.post("/status/subscribe", content=b'{"email": "d@example.com"}', headers=FORM)
        assert curl_d.status_code == 400 and "Content-Type: application/json" in curl_d.json()["error"]
        no_email = await api.post("/status/subscribe", json={"components": []})
        assert no_email.status_code == 422 and no_email.json()["fields"] == ["email: Field required"]

        path, token = LINK.search(text_of(confirm_mail)).groups()  # type: ignore[union-attr]
        assert (await api.post(path, data={"token": token})).text.count("Subscribed") >= 1
        bob = await api.post("/status/subscribe", data={"email": "bob@example.com"})  # no box ticked: everything
        assert bob.status_code == 202
        path, token = LINK.search(text_of(await arrives(smtp, "bob@example.com", "Confirm"))).groups()  # type: ignore[union-attr]
        assert "Subscribed" in (await api.post(path, data={"token": token})).text

        # RFC 8058: the mail client POSTs `List-Unsubscribe=One-Click` to the List-Unsubscribe URL
        one_click = urlsplit(str(confirm_mail.message["List-Unsubscribe"]).strip("<>"))  # type: ignore[attr-defined]
        assert one_click.path == "/status/unsubscribe" and one_click.query.startswith("token=")
        shown = await api.get(f"{one_click.path}?{one_click.query}")
        assert shown.status_code == 200 and "<form method=post" in shown.text  # a GET (a link scanner) never acts
        gone = await api.post(f"{one_click.path}?{one_click.query}", content=b"List-Unsubscribe=One-Click",
                              headers=FORM)
        assert gone.status_code == 200 and "Unsubscribed" in gone.text

        iid = (await api.post("/v1/incidents", json={"title": "Card payments failing", "severity": "SEV2",
                                                      "service": "checkout", "declared_by": "alice",
                                                      "page": False})).json()["id"]
        await api.post(f"/v1/incidents/{iid}/roles", json={"role": "comms", "person": "bob", "by": "alice"})
        published = await api.post(f"/v1/incidents/{iid}/public-updates", json={"by": "bob"})
        assert published.status_code == 200, published.text
        await arrives(smtp, "bob@example.com", "Investigating")
        await asyncio.sleep(1.5)  # the same fan-out batch would have mailed Ann by now
        assert not mail_to(smtp, "ann@example.com", "Investigating")  # unsubscribed with one click
        assert not mail_to(smtp, "carl@example.com", "Investigating")  # never confirmed


async def test_the_form_says_when_to_retry_while_temporal_is_down(tmp_path: Path) -> None:
    down = Settings(temporal_address="127.0.0.1:1", data_dir=tmp_path)
    async with uvicorn_serving(create_app(down, config=config())) as port, \
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as api:
        for _ in range(2):  # the first finds Temporal down, the second meets the open circuit
            later = await api.post("/status/subscribe", data={"email": "ann@example.com"})
            assert later.status_code == 503 and later.headers["content-type"].startswith(HTML), later.text
            assert re.search(r"try again in \d+ seconds", later.text) and int(later.headers["Retry-After"]) >= 1
        still_json = await api.post("/status/subscribe", json={"email": "ann@example.com"})
        assert still_json.status_code == 503 and "error" in still_json.json()
