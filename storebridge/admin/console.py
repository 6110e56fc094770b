"""The console's shared parts: its state (`Console`), the session and CSRF guards the pages depend on,
redirects and paging. The ASGI app that mounts the pages is storebridge.admin.app."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from jinja2 import Environment

from storebridge.admin.auth import ConsoleAuth, LoginRequired, Session, read_form
from storebridge.admin.queries import AdminQueries
from storebridge.bootstrap import Hub

__all__ = [
    "Console",
    "Action",
    "get_console",
    "page_session",
    "action",
    "redirect",
    "safe_next",
    "PAGE_SIZE",
    "one_page",
]

PAGE_SIZE = 50  # rows per console list page


def one_page(rows: list[Any], cursor: Callable[[Any], str]) -> tuple[list[Any], str | None]:
    """A page of a list fetched with PAGE_SIZE + 1 rows: the page, and the cursor of the next one."""
    page = rows[:PAGE_SIZE]
    return page, cursor(page[-1]) if len(rows) > PAGE_SIZE and page else None


PREFIX = "/admin"

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
