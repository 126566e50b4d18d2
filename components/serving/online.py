"""Online captioning on Ray Serve: one deployment, ``Captioner``, behind a FastAPI ingress.

    serve run components.serving.online:app_builder model=models:/caponimage@champion
    serve deploy infra/serve/caponimage.yaml            (replicas, autoscaling, health checks there)
    python flows/serve.py                               (local Ray, local MLflow, the page on :8000)

Routes: ``GET /`` the captioning page; ``POST /caption`` a JSON request (``components.serving.api``);
``POST /caption/upload`` the same as a multipart form with the image as a file; ``GET /healthz``.
Each replica loads the model once and follows the registry (``ModelFollower``, polled every
``poll_s``); requests arriving together are captioned in one batch (``@serve.batch``); every answer
says which model version wrote it. With ``shadow_model`` and ``shadow_percent``, that share of the
requests is captioned again by the shadow model (``@challenger``) after the caller has its answer, and
both answers are appended to ``shadow_log/<replica>.jsonl`` for comparison.
"""

# No `from __future__ import annotations` here: FastAPI reads the routes' annotations (Request) at run time.
import asyncio
import json
import logging
import os
import random
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from importlib.resources import files
from pathlib import Path
from typing import Any

import pandas as pd
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator
from ray import serve

from components.errors import ConfigError
from components.serving.api import (
    BadRequest,
    CaptionQuery,
    answer,
    checked_params,
    query_from_form,
    query_from_json,
)
from components.serving.follower import Loaded, ModelFollower
from components.tracking.sources import ModelSource

log = logging.getLogger(__name__)
DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
MAX_SHADOW_BACKLOG = 64  # shadow work waiting beyond this is dropped: it must never slow the answers


class ServeArgs(BaseModel):
    """The application's arguments (``args:`` in the Serve config), checked before any replica starts."""

    model_config = ConfigDict(extra="forbid")

    model: str = "models:/caponimage@champion"
    tracking_uri: str = Field(default_factory=lambda: os.environ.get("MLFLOW_TRACKING_URI", DEFAULT_TRACKING_URI))
    poll_s: float = Field(10.0, gt=0, description="how often a replica reads the alias")
    params: dict[str, Any] = Field(default_factory=dict, description="the model's parameters when a request gives none")
    max_batch_size: int = Field(8, ge=1, le=64)
    batch_wait_timeout_s: float = Field(0.01, ge=0, le=1)
    shadow_model: str | None = None
    shadow_percent: float = Field(0.0, ge=0, le=100)
    shadow_log: str = "outputs/shadow"

    @field_validator("model", "shadow_model")
    @classmethod
    def _a_model_source(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                ModelSource.parse(value, "model")
            except ConfigError as err:
                raise ValueError(str(err).partition(": ")[2]) from err  # the key is named by serve_args
        return value

    @field_validator("params")
    @classmethod
    def _the_models_params(cls, value: dict[str, Any]) -> dict[str, Any]:
        try:
            checked_params(value)
        except BadRequest as err:
            raise ValueError(str(err)) from err
        return value

    @field_validator("shadow_percent")
    @classmethod
    def _shadow_needs_a_model(cls, value: float, info: ValidationInfo) -> float:
        if value > 0 and info.data.get("shadow_model") is None:  # shadow_model is declared, so checked, first
            raise ValueError("shadow_percent > 0 needs shadow_model (e.g. models:/caponimage@challenger)")
        return value


def caption_queries(loaded: Loaded, name: str, queries: Sequence[CaptionQuery]) -> list[dict[str, Any] | BadRequest]:
    """Caption checked queries with one model, one ``predict`` call per distinct set of parameters; an
    answer per query in order (a row the model refused is a ``BadRequest`` naming it)."""
    results: list[dict[str, Any] | BadRequest | None] = [None] * len(queries)
    groups: dict[tuple, list[int]] = {}
    for position, query in enumerate(queries):
        groups.setdefault(query.params, []).append(position)
    for params, positions in groups.items():
        frame = pd.DataFrame([queries[p].row() for p in positions])
        output = loaded.model.predict(frame, params=dict(params))
        for position, row in zip(positions, output.to_dict("records"), strict=True):
            if row["error"]:
                results[position] = BadRequest("request", str(row["error"]))
            else:
                results[position] = answer(queries[position], row, name, loaded.version)
    return results


def page() -> str:
    return files("components.serving").joinpath("page/index.html").read_text("utf-8")


api = FastAPI(title="CapOnImage captioning", description="Captions written onto product images, one per box.")


@serve.deployment(
    name="Captioner",
    max_ongoing_requests=32,
    health_check_period_s=10,
    health_check_timeout_s=30,
    graceful_shutdown_timeout_s=30,
    ray_actor_options={"num_cpus": 1},
)
@serve.ingress(api)
class Captioner:
    def __init__(self, args: Mapping[str, Any]):
        self.args = ServeArgs.model_validate(dict(args))
        self.follower = ModelFollower(self.args.model, self.args.tracking_uri)
        self.follower.refresh()  # a model that does not load fails the replica's start: Serve reports it
        self.name = self.follower.registered_name()
        self.shadow = None
        if self.args.shadow_percent > 0:
            self.shadow = ModelFollower(self.args.shadow_model, self.args.tracking_uri)
            self._refresh(self.shadow)
        self._caption_batch.set_max_batch_size(self.args.max_batch_size)
        self._caption_batch.set_batch_wait_timeout_s(self.args.batch_wait_timeout_s)
        self._shadow_pool = ThreadPoolExecutor(max_workers=1)
        self._shadow_room = threading.BoundedSemaphore(MAX_SHADOW_BACKLOG)
        self._log_lock = threading.Lock()
        self._stop = threading.Event()
        self._poller = threading.Thread(target=self._follow, name="registry-poller", daemon=True)
        self._poller.start()

    # --- following the registry -------------------------------------------------------------------
    def _follow(self) -> None:
        while not self._stop.wait(self.args.poll_s):
            for follower in (self.follower, self.shadow):
                if follower is not None and follower.follows:
                    self._refresh(follower)

    @staticmethod
    def _refresh(follower: ModelFollower) -> None:
        try:
            follower.refresh()
        except Exception:  # the registry unreachable a while: the loaded version keeps answering
            log.exception("could not read the registry for %s", follower.source)

    def check_health(self) -> None:
        """Serve's health check: a loaded model and a live registry poller."""
        if self.follower.current() is None:
            raise RuntimeError(f"no model loaded from {self.args.model}")
        if not self._poller.is_alive():
            raise RuntimeError("the registry poller stopped")

    def __del__(self):
        self._stop.set()

    # --- routes ------------------------------------------------------------------------------------
    @api.get("/", response_class=HTMLResponse)
    async def index(self) -> str:
        return page()

    @api.get("/healthz")
    async def healthz(self) -> dict[str, Any]:
        loaded = self.follower.current()
        return {"status": "ok", "model": self.name, "model_version": loaded.version if loaded else None}

    @api.post("/caption")
    async def caption(self, request: Request):
        try:
            body = json.loads(await request.body())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            return JSONResponse(BadRequest("body", f"not JSON: {err}").body(), status_code=400)
        return await self._respond(lambda: query_from_json(body, self.args.params))

    @api.post("/caption/upload")
    async def upload(self, request: Request):
        form = await request.form()
        image = form.get("image")
        if image is None or isinstance(image, str):
            return JSONResponse(BadRequest("image", "missing: upload the image as a file").body(), status_code=400)
        data = await image.read()
        fields = {key: value for key, value in form.items() if isinstance(value, str)}
        return await self._respond(lambda: query_from_form(fields, data, self.args.params))

    async def _respond(self, make_query):
        try:
            query = await asyncio.to_thread(make_query)  # decoding an image is work: off the event loop
        except BadRequest as err:
            return JSONResponse(err.body(), status_code=400)
        result = await self._caption_batch(query)
        if isinstance(result, BadRequest):
            return JSONResponse(result.body(), status_code=400)
        self._maybe_shadow(query, result)
        return result

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.01)
    async def _caption_batch(self, queries: list[CaptionQuery]) -> list[dict[str, Any] | BadRequest]:
        loaded = self.follower.current()  # the batch keeps this version even if the alias moves meanwhile
        return await asyncio.to_thread(caption_queries, loaded, self.name, queries)

    # --- shadow traffic ----------------------------------------------------------------------------
    def _maybe_shadow(self, query: CaptionQuery, result: dict[str, Any]) -> None:
        if self.shadow is None or random.random() * 100 >= self.args.shadow_percent:
            return
        if not self._shadow_room.acquire(blocking=False):
            log.warning("shadow backlog full: request %s not shadowed", query.id)
            return
        self._shadow_pool.submit(self._shadow_answer, query, result)

    def _shadow_answer(self, query: CaptionQuery, result: dict[str, Any]) -> None:
        try:
            loaded = self.shadow.current()
            if loaded is None:
                return
            shadow = caption_queries(loaded, self.shadow.registered_name(), [query])[0]
            line = {
                "time": time.time(),
                "id": query.id,
                "params": dict(query.params),
                "primary": {"model_version": result["model_version"], "captions": result["captions"]},
                "shadow": {"model": self.args.shadow_model, "model_version": loaded.version,
                           "captions": shadow["captions"] if isinstance(shadow, dict) else None},
            }  # fmt: skip
            line["same"] = line["primary"]["captions"] == line["shadow"]["captions"]
            self._append_shadow(line)
        except Exception:
            log.exception("shadow captioning of %s failed", query.id)
        finally:
            self._shadow_room.release()

    def _append_shadow(self, line: dict[str, Any]) -> None:
        folder = Path(self.args.shadow_log)
        folder.mkdir(parents=True, exist_ok=True)
        replica = serve.get_replica_context().replica_id.unique_id
        with self._log_lock, open(folder / f"{replica}.jsonl", "a", encoding="utf-8") as out:
            out.write(json.dumps(line, ensure_ascii=False) + "\n")


def serve_args(as_flags: bool = False, **values: Any) -> ServeArgs:
    """``ServeArgs`` from keyword values, or ``ConfigError`` naming the first bad one (before Ray
    starts); ``as_flags`` names it as the flow's flag (``--shadow-percent``)."""
    try:
        return ServeArgs(**{k: v for k, v in values.items() if v is not None})
    except ValidationError as err:
        first = err.errors()[0]
        key = ".".join(str(part) for part in first["loc"])
        key = "--" + key.replace("_", "-") if as_flags else key
        raise ConfigError(key, first["msg"].removeprefix("Value error, ")) from err


def app_builder(args: ServeArgs) -> serve.Application:
    """The application ``serve run`` / ``serve deploy`` build; Serve checks ``args`` against
    ``ServeArgs`` first, so a bad argument fails before any replica starts."""
    return Captioner.bind(args.model_dump())
