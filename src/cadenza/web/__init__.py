"""The web UI and JSON API (`cadenza ui`): FastAPI with Jinja2 pages, no assets from outside.

Needs the ``ui`` extra: ``pip install 'cadenza[ui]'``."""

from cadenza.web.app import create_app
from cadenza.web.read import Site

__all__ = ["Site", "create_app"]
