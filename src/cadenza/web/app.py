"""The web app, built in one visible function: the JSON API, the pages, the login, static
files, and the guard in front of all of them (Host, body size, auth, CSRF, security headers);
and how each error becomes an answer (404, 409, 413, 422, 429, 503, never a bare 500)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.exceptions import HTTPException

from cadenza.exceptions import CadenzaError, ParamError, RunNotFoundError, StoreError
from cadenza.metrics import Metrics
from cadenza.web import api, assets, items, operate, pages, preview
from cadenza.web.guard import Guard, Hosts, client_of, verify
from cadenza.web.limits import InputError, Throttle, Throttled
from cadenza.web.models import security_schemes
from cadenza.web.read import NotFound, Site
from cadenza.web.security import Auth, login_response, logout_response, safe_next

STATIC = Path(__file__).parent / "static"


def create_app(site: Site, auth: Auth, metrics: Metrics | None = None, *,
               hosts: Hosts | None = None) -> FastAPI:
    """The UI for ``site``: every route but /health, /login and /static/ needs ``auth``.
    ``metrics`` (those of the scheduler inside `cadenza ui`) are served at /metrics. ``hosts``
    are the Host names answered (None: any, for in-process use; `cadenza ui` always sets it)."""
    registry = metrics if metrics is not None else Metrics()
    throttle = Throttle()
    # No Swagger page: it loads its scripts from a CDN. The schema is served as JSON.
    app = FastAPI(title="cadenza", version="1", docs_url=None, redoc_url=None,
                  openapi_url="/api/v1/openapi.json")
    app.state.site = site
    app.state.auth = auth
    app.include_router(api.router)
    app.include_router(items.router)
    app.include_router(preview.router)
    app.include_router(assets.router)
    app.include_router(operate.router)
    app.include_router(pages.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/health", include_in_schema=False)
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/metrics", include_in_schema=False)
    def prometheus() -> Response:
        return Response(registry.text(), media_type=CONTENT_TYPE_LATEST)

    def login_page(request: Request, next_url: str, failed: bool) -> Response:
        return pages.page(request, "login.html", {}, status=401 if failed else 200,
                          next=safe_next(next_url), failed=failed,
                          user_login=auth.user is not None)

    @app.get("/login", include_in_schema=False, response_class=HTMLResponse)
    def login_form(request: Request, next: str = "/") -> Response:
        return login_page(request, next, failed=False)

    @app.post("/login", include_in_schema=False)
    async def login(request: Request) -> Response:
        fields, _ = await api.read_fields(request)
        next_url = safe_next(str(fields.get("next") or "/"))
        who = await verify(auth, throttle, client_of(request.scope),
                           str(fields.get("user") or "") or None, str(fields.get("secret") or ""))
        if who is None:
            return login_page(request, next_url, failed=True)
        return login_response(auth, who, next_url, secure=request.url.scheme == "https")

    @app.post("/logout", include_in_schema=False)
    def logout(request: Request) -> Response:
        return logout_response(auth, request.cookies.get(auth.cookie))

    def error(request: Request, status: int, message: str,
              headers: dict[str, str] | None = None) -> Response:
        if "text/html" in request.headers.get("accept", ""):
            page = pages.page(request, "error.html", {"status": status, "message": message},
                              status=status)
            page.headers.update(headers or {})
            return page
        return JSONResponse({"detail": message}, status_code=status, headers=headers)

    @app.exception_handler(CadenzaError)
    async def refused(request: Request, exc: CadenzaError) -> Response:
        if isinstance(exc, Throttled):
            return error(request, 429, str(exc), {"Retry-After": str(exc.retry_after)})
        return error(request, _status_of(exc), str(exc))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        return error(request, 422, f"Bad request: {problems}.")

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        return error(request, exc.status_code, str(exc.detail))

    _declare_security(app, security_schemes(auth.cookie))
    app.add_middleware(Guard, auth=auth, hosts=hosts, throttle=throttle)
    return app


def _status_of(exc: CadenzaError) -> int:
    """The HTTP status of an error an action or a page raised on purpose: what was asked for
    is missing (404), the input is wrong (413/422), the store is busy (503), or the thing asked
    about is in a state that does not allow it (409)."""
    if isinstance(exc, NotFound | RunNotFoundError):
        return 404
    if isinstance(exc, InputError):
        return exc.status
    if isinstance(exc, ParamError):
        return 422
    if isinstance(exc, StoreError):
        return 503
    return 409


def _declare_security(app: FastAPI, schemes: dict[str, Any]) -> None:
    """``schemes`` (Bearer, Basic, the cookie) in the document, any one of them required."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            schema.setdefault("components", {})["securitySchemes"] = schemes
            schema["security"] = [{name: []} for name in schemes]
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
