"""The web app, built in one visible function: the JSON API, the pages, the login, static
files, and the guard in front of all of them (auth, CSRF, security headers)."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.exceptions import HTTPException

from cadenza.exceptions import CadenzaError
from cadenza.metrics import Metrics
from cadenza.web import api, pages
from cadenza.web.guard import Guard
from cadenza.web.read import NotFound, Site
from cadenza.web.security import Auth, login_response, logout_response, safe_next

STATIC = Path(__file__).parent / "static"


def create_app(site: Site, auth: Auth, metrics: Metrics | None = None) -> FastAPI:
    """The UI for ``site``: every route but /health, /login and /static/ needs ``auth``.
    ``metrics`` (those of the scheduler inside `cadenza ui`) are served at /metrics."""
    registry = metrics if metrics is not None else Metrics()
    # No Swagger page: it loads its scripts from a CDN. The schema is served as JSON.
    app = FastAPI(title="cadenza", version="1", docs_url=None, redoc_url=None,
                  openapi_url="/api/v1/openapi.json")
    app.state.site = site
    app.state.auth = auth
    app.include_router(api.router)
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
        who = auth.check(fields.get("user") or None, str(fields.get("secret") or ""))
        if who is None:
            return login_page(request, next_url, failed=True)
        return login_response(auth, who, next_url, secure=request.url.scheme == "https")

    @app.post("/logout", include_in_schema=False)
    def logout() -> Response:
        return logout_response()

    def error(request: Request, status: int, message: str) -> Response:
        if "text/html" in request.headers.get("accept", ""):
            return pages.page(request, "error.html", {"status": status, "message": message},
                              status=status)
        return JSONResponse({"detail": message}, status_code=status)

    @app.exception_handler(NotFound)
    async def not_found(request: Request, exc: NotFound) -> Response:
        return error(request, 404, str(exc))

    @app.exception_handler(CadenzaError)
    async def bad_request(request: Request, exc: CadenzaError) -> Response:
        return error(request, 400, str(exc))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        return error(request, 400, f"Bad request: {problems}.")

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        return error(request, exc.status_code, str(exc.detail))

    app.add_middleware(Guard, auth=auth)
    return app
