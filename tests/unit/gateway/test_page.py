"""The web page's browser rules (issue 20): its responses carry the Content-Security-Policy, X-Frame-Options
and Referrer-Policy, and the page itself needs nothing the policy refuses. A bare app with the page mounted;
the real browser under the policy is ``tests/e2e/test_web.py``."""

from __future__ import annotations

import base64
import hashlib
import re

from fastapi import FastAPI
from fastapi.testclient import TestClient

from services.gateway import page


def _directives() -> dict[str, str]:
    return dict(d.split(" ", 1) for d in page.POLICY.split("; "))


def test_the_page_and_its_files_carry_the_policy() -> None:
    app = FastAPI()
    page.mount(app)
    with TestClient(app) as client:
        for path in ("/", "/static/js/app.js", "/static/style.css", "/static/favicon.svg"):
            r = client.get(path)
            assert r.status_code == 200, path
            assert {k: r.headers.get(k) for k in page.HEADERS} == page.HEADERS, path
        assert client.get("/static/no-such-file.js").status_code == 404


def test_the_policy_allows_this_origin_only_and_no_framing() -> None:
    directives = _directives()
    assert directives["default-src"] == directives["script-src"] == directives["connect-src"] == "'self'"
    assert directives["frame-ancestors"] == directives["object-src"] == directives["base-uri"] == "'none'"
    assert "unsafe" not in page.POLICY and "*" not in page.POLICY and "http" not in page.POLICY
    assert page.HEADERS["X-Frame-Options"] == "DENY"
    assert page.HEADERS["Referrer-Policy"] == "no-referrer"


def test_the_one_inline_style_allowed_is_the_chart_logos() -> None:
    """lightweight-charts adds a <style> for its attribution logo: its hash is the only inline style the policy
    lets in, recomputed here from the vendored file."""
    (vendor,) = (page.STATIC / "vendor").glob("lightweight-charts-*.js")
    styles = re.findall(r'createElement\("style"\),this\.\w+\.innerText="([^"\\]*)"', vendor.read_text())
    assert len(styles) == 1, "the library's inline style moved: find it and hash it again"
    digest = base64.b64encode(hashlib.sha256(styles[0].encode()).digest()).decode()
    assert page.CHART_LOGO_STYLE == f"sha256-{digest}"
    assert f"'{page.CHART_LOGO_STYLE}'" in _directives()["style-src"]


def test_the_page_has_no_inline_script_or_style_the_policy_would_refuse() -> None:
    html = (page.STATIC / "index.html").read_text()
    assert not re.search(r"<script(?![^>]*\bsrc=)", html), "an inline script"
    assert not re.search(r"\sstyle=|\son[a-z]+=|<style", html), "an inline style or event handler"
    for js in (page.STATIC / "js").glob("*.js"):
        text = js.read_text()
        assert 'setAttribute("style"' not in text and "innerHTML" not in text and "eval(" not in text, js.name
