"""Sign-in and sign-out, the home page and the integrations page."""

from __future__ import annotations

import math

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from storebridge.admin.auth import LOGIN_COOKIE, LOGIN_FORM_SECONDS, SESSION_COOKIE, Session, read_form
from storebridge.admin.chart import HEIGHT, WIDTH, panels
from storebridge.admin.console import Action, Console, action, get_console, page_session, redirect, safe_next

__all__ = ["router"]

router = APIRouter()


@router.get("/login")
async def login_page(request: Request, console: Console = Depends(get_console)) -> Response:
    console.auth.refuse_token_in_url(request)
    if console.auth.session_of(request) is not None:
        return RedirectResponse(safe_next(request.query_params.get("next")), status_code=303)
    return _login_form(request, console)


def _login_form(request: Request, console: Console, *, error: str | None = None, status: int = 200) -> HTMLResponse:
    nonce = console.auth.new_login_nonce()
    response = console.render(
        request,
        "login.html",
        status_code=status,
        login_csrf=nonce,
        next=safe_next(request.query_params.get("next")),
        error=error,
        https=console.auth.secure(request),
    )
    console.auth.set_cookie(response, request, LOGIN_COOKIE, nonce, LOGIN_FORM_SECONDS)
    return response


@router.post("/login")
async def login(request: Request, console: Console = Depends(get_console)) -> Response:
    console.auth.refuse_token_in_url(request)
    form = await read_form(request)
    console.auth.check_login_csrf(request, form.get("csrf"))
    address = request.client.host if request.client else "unknown"
    throttle = console.auth.sign_ins
    if wait := math.ceil(throttle.wait_for(address)):
        error = f"Too many wrong tokens from your address. Try again in {wait} s."
        refused = _login_form(request, console, error=error, status=429)
        refused.headers["Retry-After"] = str(wait)
        return refused
    if not console.auth.token_matches(form.get("token", "")):
        throttle.failed(address)
        return _login_form(request, console, error="That is not the API token.", status=401)
    throttle.succeeded(address)
    _, cookie = console.auth.new_session()
    response = RedirectResponse(safe_next(form.get("next")), status_code=303)
    console.auth.set_cookie(response, request, SESSION_COOKIE, cookie, console.auth.session_seconds)
    console.auth.clear_cookie(response, request, LOGIN_COOKIE)
    return response


@router.post("/logout")
async def logout(request: Request, act: Action = Depends(action), console: Console = Depends(get_console)) -> Response:
    console.auth.revoke(act.session)
    response = RedirectResponse("/admin/login?notice=signed_out", status_code=303)
    console.auth.clear_cookie(response, request, SESSION_COOKIE)
    return response


@router.get("/")
async def home(
    request: Request, session: Session = Depends(page_session), console: Console = Depends(get_console)
) -> Response:
    hub = console.hub
    dead = await console.queries.dead_letters()
    disputes = await console.queries.open_disputes()
    start, series = await console.queries.webhook_chart(sorted(hub.webhook_sources))
    return console.render(
        request,
        "home.html",
        session=session,
        dead=dead,
        disputes=disputes,
        integrations=list(hub.integrations.values()),
        panels=panels(start, series),
        chart_width=WIDTH,
        chart_height=HEIGHT,
    )


@router.get("/integrations")
async def integrations(
    request: Request, session: Session = Depends(page_session), console: Console = Depends(get_console)
) -> Response:
    hub = console.hub
    rows = [(i, hub.calls.summary(i.name)) for i in hub.integrations.values()]
    return console.render(request, "integrations.html", session=session, rows=rows)


@router.post("/integrations/check")
async def run_health_checks(_: Action = Depends(action), console: Console = Depends(get_console)) -> Response:
    await console.hub.check_health()
    return redirect("/integrations", notice="checked")
