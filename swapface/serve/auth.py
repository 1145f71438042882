"""One access token: from SWAPFACE_TOKEN, or made on first start and kept (owner-only) under --data.

API clients send `Authorization: Bearer <token>`. The browser UI trades the token once for an
HttpOnly, SameSite=Strict cookie (so <img> and <video> can load files); requests that change
something with that cookie must also carry the `X-Swapface` header, which other sites cannot add
(CORS is off), so the cookie cannot be used for cross-site request forgery.
"""

from __future__ import annotations

import hmac
import os
import secrets
from pathlib import Path

from fastapi import HTTPException, Request

TOKEN_ENV = "SWAPFACE_TOKEN"
TOKEN_FILE = "token"
COOKIE = "swapface_token"
CSRF_HEADER = "X-Swapface"
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


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


def is_authorised(request: Request, token: str) -> bool:
    if token_matches(bearer(request), token):
        return True
    cookie = request.cookies.get(COOKIE)
    if not token_matches(cookie, token):
        return False
    return request.method in SAFE_METHODS or CSRF_HEADER.lower() in request.headers


def require_token(request: Request) -> None:
    """FastAPI dependency for everything under /api but the health check."""
    if not is_authorised(request, request.app.state.config.token):
        raise HTTPException(401, "missing or wrong access token", headers={"WWW-Authenticate": "Bearer"})
