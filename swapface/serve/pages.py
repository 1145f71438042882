"""The web UI's pages: server-rendered Jinja2 templates; a little JavaScript then talks to /api."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from sqlmodel import select

from swapface.jobs.options import SwapJobOptions
from swapface.jobs.store import Project
from swapface.model.config import PRESETS
from swapface.serve.auth import EVERYTHING, scope_of
from swapface.swap.blend import BLEND_MODES
from swapface.swap.color import COLOR_MODES
from swapface.swap.masks import MASK_MODES

templates = Jinja2Templates(directory=Path(__file__).parent / "templates")
router = APIRouter(include_in_schema=False)


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request) -> Response:
    return templates.TemplateResponse(request, "login.html", {"title": "Sign in"})


@router.get("/", response_class=HTMLResponse)
def index(request: Request) -> Response:
    scope = scope_of(request)  # EVERYTHING, one project's id, or None: not signed in
    if scope is None:
        return RedirectResponse("/login", status_code=303)
    query = select(Project).order_by(Project.created.desc())
    if scope != EVERYTHING:
        query = query.where(Project.id == scope)
    with request.app.state.store.session() as s:
        projects = list(s.exec(query).all())
    return templates.TemplateResponse(request, "index.html", {"title": "Projects", "projects": projects})


@router.get("/projects/{project_id}", response_class=HTMLResponse)
def project_page(project_id: str, request: Request) -> Response:
    scope = scope_of(request)  # EVERYTHING, one project's id, or None: not signed in
    if scope is None:
        return RedirectResponse("/login", status_code=303)
    with request.app.state.store.session() as s:
        project = s.get(Project, project_id)
    if project is None or scope not in (EVERYTHING, project_id):
        return templates.TemplateResponse(request, "missing.html", {"title": "Not found"}, status_code=404)
    return templates.TemplateResponse(request, "project.html", {
        "title": project.name, "project": project, "presets": list(PRESETS), "blends": BLEND_MODES,
        "colors": COLOR_MODES, "masks": MASK_MODES, "swap_defaults": SwapJobOptions()})


@router.get("/verify", response_class=HTMLResponse)
def verify_page(request: Request) -> Response:
    if scope_of(request) is None:
        return RedirectResponse("/login", status_code=303)
    return templates.TemplateResponse(request, "verify.html", {"title": "Verify a file"})
