"""The console's ASGI app: error pages, security headers, static files and the page routers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.staticfiles import StaticFiles

from storebridge.admin import events, inbox, orders, pages
from storebridge.admin.auth import ConsoleAuth, CsrfRejected, LoginRequired, TokenInUrl
from storebridge.admin.console import PREFIX, Console
from storebridge.admin.queries import AdminQueries
from storebridge.admin.render import STATIC, make_environment
from storebridge.bootstrap import Hub
from storebridge.errors import InvalidRequest, NotFound

__all__ = ["create_console"]

# Headers on every console answer: no framing, no inline script, nothing cached or referred.
SECURITY_HEADERS = {
    "content-security-policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'",
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}


def _error(console: Console, request: Request, status: int, title: str, message: str) -> Response:
    session = console.auth.session_of(request)
    return console.render(request, "error.html", session=session, status_code=status, title=title, message=message)


def _install_error_pages(app: FastAPI, console: Console) -> None:
    @app.exception_handler(LoginRequired)
    async def _login(request: Request, _: LoginRequired) -> Response:
        if request.method in ("GET", "HEAD"):
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse(f"{PREFIX}/login?next={quote(target, safe='')}", status_code=303)
        return _error(console, request, 401, "Sign-in required", "This action needs a console session: sign in first.")

    @app.exception_handler(CsrfRejected)
    async def _csrf(request: Request, _: CsrfRejected) -> Response:
        message = "The form's CSRF token is missing or wrong. Reload the page and submit the form again."
        return _error(console, request, 403, "Form rejected", message)

    @app.exception_handler(TokenInUrl)
    async def _token_in_url(request: Request, _: TokenInUrl) -> Response:
        message = (
            "The console never takes the API token from a URL (URLs end up in logs and browser history). "
            "Open /admin/login and type it into the form."
        )
        return _error(console, request, 400, "Token in URL refused", message)

    @app.exception_handler(NotFound)
    async def _not_found(request: Request, exc: NotFound) -> Response:
        return _error(console, request, 404, "Not found", str(exc))

    @app.exception_handler(InvalidRequest)
    async def _invalid(request: Request, exc: InvalidRequest) -> Response:
        return _error(console, request, exc.status, "Not done", str(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        return _error(console, request, exc.status_code, "Error", str(exc.detail))


def create_console(hub: Hub) -> FastAPI:
    """The console as an ASGI app to mount at /admin."""
    app = FastAPI(title="storebridge console", docs_url=None, redoc_url=None, openapi_url=None)
    console = Console(
        hub=hub,
        auth=ConsoleAuth(hub.api_token, public_https=hub.public_url.startswith("https://")),
        templates=make_environment(),
        queries=AdminQueries(hub.db),
    )
    app.state.console = console
    _install_error_pages(app, console)

    @app.middleware("http")
    async def _headers(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        response = await call_next(request)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    for module in (pages, inbox, events, orders):
        app.include_router(module.router)
    return app
