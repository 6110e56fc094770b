"""The console application, mounted at /admin: its state, its guards and its error pages."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from jinja2 import Environment
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.staticfiles import StaticFiles

from storebridge.admin.auth import ConsoleAuth, CsrfRejected, LoginRequired, Session, TokenInUrl, read_form
from storebridge.admin.queries import AdminQueries
from storebridge.admin.render import STATIC, make_environment
from storebridge.bootstrap import Hub
from storebridge.errors import InvalidRequest, NotFound

__all__ = ["Console", "Action", "create_console", "get_console", "page_session", "action", "PAGE_SIZE", "one_page"]

PAGE_SIZE = 50  # rows per console list page


def one_page(rows: list[Any], cursor: Callable[[Any], str]) -> tuple[list[Any], str | None]:
    """A page of a list fetched with PAGE_SIZE + 1 rows: the page, and the cursor of the next one."""
    page = rows[:PAGE_SIZE]
    return page, cursor(page[-1]) if len(rows) > PAGE_SIZE and page else None


PREFIX = "/admin"

# Headers on every console answer: no framing, no inline script, nothing cached or referred.
SECURITY_HEADERS = {
    "content-security-policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'",
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}

NOTICES = {
    "replayed": "Queued {n} webhook(s) to be processed again.",
    "checked": "Health checks ran for every enabled provider.",
    "resent": "Delivery queued to be sent again.",
    "disabled": "Subscription disabled: no new deliveries are queued for it.",
    "enabled": "Subscription enabled again.",
    "signed_out": "Signed out.",
}


@dataclass
class Console:
    hub: Hub
    auth: ConsoleAuth
    templates: Environment
    queries: AdminQueries

    def render(
        self, request: Request, template: str, *, session: Session | None = None, status_code: int = 200, **ctx: Any
    ) -> HTMLResponse:
        notice = NOTICES.get(request.query_params.get("notice", ""))
        if notice is not None:
            n = request.query_params.get("n", "")
            notice = notice.format(n=n if n.isdigit() else "the")
        html = self.templates.get_template(template).render(
            request_path=request.url.path,
            csrf=session.csrf if session else "",
            signed_in=session is not None,
            notice=notice,
            **ctx,
        )
        return HTMLResponse(html, status_code=status_code)


@dataclass(frozen=True, slots=True)
class Action:
    """A console POST that passed the session and CSRF checks, with its form fields."""

    session: Session
    form: dict[str, str]


def get_console(request: Request) -> Console:
    console: Console = request.app.state.console
    return console


def _signed_in(request: Request, console: Console) -> Session:
    console.auth.refuse_token_in_url(request)
    session = console.auth.session_of(request)
    if session is None:
        raise LoginRequired
    return session


async def page_session(request: Request, console: Console = Depends(get_console)) -> Session:
    return _signed_in(request, console)


async def action(request: Request, console: Console = Depends(get_console)) -> Action:
    """Every state-changing request: a session, then the session's CSRF token in the form."""
    session = _signed_in(request, console)
    form = await read_form(request)
    console.auth.check_csrf(session, form.get("csrf"))
    return Action(session, form)


def redirect(path: str, **query: str | int) -> RedirectResponse:
    qs = "&".join(f"{k}={quote(str(v), safe='')}" for k, v in query.items() if v not in (None, ""))
    return RedirectResponse(PREFIX + path + (f"?{qs}" if qs else ""), status_code=303)


def safe_next(value: str | None) -> str:
    """Only a console path may follow sign-in (no open redirect)."""
    if value and value.startswith(PREFIX + "/") and not value.startswith("//") and "\\" not in value:
        return value
    return PREFIX + "/"


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
    from storebridge.admin import events, inbox, orders, pages

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
