"""The FastAPI application: API routes, the HTML pages, bundled static files, the job scheduler."""

from __future__ import annotations

from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from swapface.jobs.layout import DataDir
from swapface.jobs.scheduler import Scheduler
from swapface.jobs.store import Store, sqlite_url
from swapface.serve import api, pages, verify_api
from swapface.serve.config import ServeConfig

STATIC = Path(__file__).parent / "static"


def create_app(config: ServeConfig) -> FastAPI:
    """An app serving `config.data`; its scheduler runs while the app does (unless `run_jobs` is off)."""
    data = DataDir(Path(config.data))
    data.make()
    store = Store(config.db_url or sqlite_url(data.root))

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        scheduler = None
        if config.run_jobs:
            scheduler = Scheduler(store, data, cpu_jobs=config.cpu_jobs,
                                  gpus=None if config.gpus is None else list(config.gpus), ray_address=config.ray)
            scheduler.start()
        app.state.scheduler = scheduler
        yield
        if scheduler is not None:
            scheduler.stop()

    app = FastAPI(title="swapface", version="0.1.0", lifespan=lifespan,
                  description="Face swapping jobs: upload footage, extract faces, train, swap, evaluate. "
                              "Every output is labelled synthetic.")
    app.state.config, app.state.store, app.state.data = config, store, data
    app.include_router(api.public)
    app.include_router(api.api)
    app.include_router(verify_api.router)
    app.include_router(pages.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app
