"""Access tokens. The server's own token (from SWAPFACE_TOKEN, or made on first start and kept owner-only
under --data) reaches everything; project tokens, made with it, reach one project each.

API clients send `Authorization: Bearer <token>`. The browser UI trades the token once for an
HttpOnly, SameSite=Strict cookie (so <img> and <video> can load files); requests that change
something with that cookie must also carry the `X-Swapface` header, which other sites cannot add
(CORS is off), so the cookie cannot be used for cross-site request forgery.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

from fastapi import HTTPException, Request

from swapface.jobs.store import ProjectToken

TOKEN_ENV = "SWAPFACE_TOKEN"
TOKEN_FILE = "token"
COOKIE = "swapface_token"
CSRF_HEADER = "X-Swapface"
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
EVERYTHING = "*"  # the scope of the server's own token


def load_token(data_dir: Path) -> tuple[str, bool]:
    """The token, and whether it was just made (so the caller prints it once)."""
    from_env = os.environ.get(TOKEN_ENV, "").strip()
    if from_env:
        return from_env, False
    path = Path(data_dir) / TOKEN_FILE
    if path.is_file():
        return path.read_text().strip(), False
    token = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(token + "\n")
    return token, True


def token_matches(given: str | None, token: str) -> bool:
    """Constant-time comparison, so response timing does not leak the token."""
    return given is not None and hmac.compare_digest(given.encode(), token.encode())


def bearer(request: Request) -> str | None:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" else None


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def scope_of(request: Request) -> str | None:
    """What the request's token reaches: EVERYTHING, one project's id, or None (no valid token).

    A project token is looked up by its SHA-256, so the lookup's timing says nothing about the token."""
    given, from_cookie = bearer(request), False
    if given is None:
        given, from_cookie = request.cookies.get(COOKIE), True
    if not given or (from_cookie and request.method not in SAFE_METHODS
                     and CSRF_HEADER.lower() not in request.headers):
        return None
    if token_matches(given, request.app.state.config.token):
        return EVERYTHING
    with request.app.state.store.session() as session:
        row = session.get(ProjectToken, token_digest(given))
    return row.project_id if row is not None else None


def require_token(request: Request) -> None:
    """FastAPI dependency for everything under /api but the health check; keeps the scope for the routes."""
    scope = scope_of(request)
    if scope is None:
        raise HTTPException(401, "missing or wrong access token", headers={"WWW-Authenticate": "Bearer"})
    request.state.scope = scope
