"""The prices model server: FastAPI, answering from the `active` version of the model.

    cd examples/prices
    CADENZA_HOME=/tmp/prices-demo/.cadenza python -m uvicorn serve:create_app --factory
    # or: CADENZA_HOME=... python serve.py [--port 8000]

GET /health says which version is active; POST /predict {"horizon": 7} forecasts from the
end of the model's data, {"prices": [...], "horizon": 7} from the prices given. The active
version is looked up again when a request comes and at least `refresh` seconds have passed,
so `cadenza artifacts rollback prices train_or_score` takes effect without a restart.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException
from pydantic import BaseModel, Field

sys.path.insert(0, str(Path(__file__).resolve().parent))  # prices_forecast, however started
from prices_forecast import MAX_HORIZON, MIN_HISTORY, forecast

from cadenza.artifacts import active, load

PIPELINE, MODEL_TASK = "prices", "train_or_score"


class PredictRequest(BaseModel):
    prices: list[float] | None = Field(
        default=None, description=f"Recent daily prices, oldest first, at least {MIN_HISTORY}; "
        "omit them to forecast from the end of the data the model was trained on.")
    horizon: int = Field(default=1, ge=1, le=MAX_HORIZON, description="Days to forecast.")


class ActiveModel:
    """The active model, reloaded when the `active` alias points somewhere else."""

    def __init__(self, home: Path, refresh: float) -> None:
        self.home, self.refresh = home, refresh
        self.version: str | None = None
        self.model: dict[str, Any] | None = None
        self._checked = -float("inf")
        self._lock = threading.Lock()

    def get(self) -> tuple[str, dict[str, Any]]:
        with self._lock:
            now = time.monotonic()
            if now - self._checked >= self.refresh or self.model is None:
                current = active(PIPELINE, MODEL_TASK, home=self.home)
                self._checked = now
                if current is None:
                    raise HTTPException(503, "No active model yet: run the pipeline "
                                             "(cadenza run examples/prices) first.")
                if current != self.version:
                    self.model = load(PIPELINE, MODEL_TASK, version=current, home=self.home)
                    self.version = current
            assert self.version is not None and self.model is not None
            return self.version, self.model


def create_app(home: str | Path | None = None, *, refresh: float = 1.0) -> FastAPI:
    """The app serving the active model of the `.cadenza` folder ``home`` (default:
    ``$CADENZA_HOME``). ``refresh``: seconds between lookups of the active version."""
    where = home if home is not None else os.environ.get("CADENZA_HOME")
    if not where:
        raise RuntimeError("Tell the server where the pipeline's state is: create_app(home) "
                           "or set CADENZA_HOME=/path/to/.cadenza.")
    path = Path(where).resolve()
    if not (path / "cadenza.db").is_file():
        raise RuntimeError(f"{str(path)!r} holds no cadenza state; run the pipeline with "
                           f"`cadenza --home {path} run examples/prices` first.")
    models = ActiveModel(path, refresh)
    app = FastAPI(title="prices forecaster", version="1")

    @app.get("/health")
    def health() -> dict[str, Any]:
        version, model = models.get()
        return {"status": "ok", "model_version": version, "model": model["kind"],
                "trained_through": model["train_end"]}

    @app.post("/predict")
    def predict(request: PredictRequest) -> dict[str, Any]:
        version, model = models.get()
        history = request.prices if request.prices is not None else model["history"]
        try:
            values = forecast(model, history, request.horizon)
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None
        return {"forecast": values, "horizon": request.horizon, "model_version": version,
                "model": model["kind"],
                "from": "request" if request.prices is not None else model["history_end"]}

    return app


def main(argv: list[str] | None = None) -> None:
    import argparse

    import uvicorn

    parser = argparse.ArgumentParser(description="Serve the active prices model.")
    parser.add_argument("--home", default=os.environ.get("CADENZA_HOME"))
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args(argv)
    uvicorn.run(create_app(args.home), host=args.host, port=args.port)


if __name__ == "__main__":
    main()
