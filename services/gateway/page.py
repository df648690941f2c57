"""The web trading page (``static/``), served with the browser rules that keep it this origin's own.

The page signs orders with a key the user types in, so a script of anyone else's running in it, or another
site framing it, could trade as the user. Its responses carry (issue 20):

- ``Content-Security-Policy``: scripts, styles, images, fonts and connections (REST and the WebSockets) from
  this origin only, no inline script and no ``eval``; the one inline style is the chart library's attribution
  logo, allowed by its hash (``CHART_LOGO_STYLE``; ``tests/unit/gateway/test_page.py`` recomputes it from the
  vendored file, so a new library version cannot silently lose it); no plugins, no ``<base>``, forms post
  here only, and no page may frame it;
- ``X-Frame-Options: DENY`` (``frame-ancestors`` for browsers that predate it), ``Referrer-Policy:
  no-referrer`` (links out, such as the chart's attribution, learn nothing of the page) and
  ``X-Content-Type-Options: nosniff``.

Only the page and its files get them: the API answers JSON, and ``/docs`` (Swagger UI from a CDN, never on
the public path) would not load under this policy.
"""

from __future__ import annotations

import os
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from starlette.responses import Response
from starlette.types import Scope

STATIC = Path(__file__).parent / "static"  # built on the public API only
# sha256 of the <style> lightweight-charts adds for its attribution logo (its text, as the library sets it)
CHART_LOGO_STYLE = "sha256-3pRED1tOXas1FXFoPb9TGCjmYe9XQsmO9OV23khV2nY="
POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        f"style-src 'self' '{CHART_LOGO_STYLE}'",
        "img-src 'self'",
        "font-src 'self'",
        "connect-src 'self'",  # same-origin ws: and wss: included (CSP 3)
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
HEADERS = {
    "Content-Security-Policy": POLICY,
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}


class PageFiles(StaticFiles):
    """The page's files, each with ``HEADERS``."""

    def file_response(
        self, full_path: str | os.PathLike[str], stat_result: os.stat_result, scope: Scope, status_code: int = 200
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        response.headers.update(HEADERS)
        return response


def mount(app: FastAPI) -> None:
    """Serve the page at ``/`` and its files under ``/static``."""

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers=HEADERS)

    app.mount("/static", PageFiles(directory=STATIC), name="static")
