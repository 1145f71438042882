"""The platform's verify page and API: the same verdict as `swapface verify`, for uploads and stored files,
in the API and in a real headless Chromium."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from swapface.demo import bundled_model
from swapface.swap.options import SwapOptions
from swapface.swap.pipeline import swap_media
from tests.conftest import STILLS
from tests.serve_helpers import TOKEN, Server
from tests.test_serve_api import make_client
from tests.test_serve_browser import CHROMIUM, CHROMIUM_ARGS

UNSWAPPED = STILLS / "lp_d9.jpg"


@pytest.fixture(scope="module")
def signed_swap(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real signed, tagged and watermarked swap of a real photo."""
    out = tmp_path_factory.mktemp("verify") / "swapped.png"
    swap_media(STILLS / "mpl_grace_hopper.jpg", bundled_model(), out, SwapOptions(detect_workers=0))
    return out


def _post(client: TestClient, path: Path, name: str, **data: str):
    with open(path, "rb") as fh:
        return client.post("/api/verify", files={"file": (name, fh)}, data=data)


def test_upload_verdicts_match_the_command(signed_swap: Path, tmp_path: Path) -> None:
    with make_client(tmp_path / "data") as client:
        swapped = _post(client, signed_swap, "from-a-friend.png")
        assert swapped.status_code == 200, swapped.text
        verdict = swapped.json()
        assert verdict["swapface"] and verdict["path"] == "from-a-friend.png"  # named as the user knows it
        assert verdict["manifest"]["valid"] and verdict["manifest"]["swapface"]
        assert verdict["tag"] is not None and "signed Content Credentials" in verdict["summary"]
        plain = _post(client, UNSWAPPED, "holiday.jpg").json()
        assert not plain["swapface"] and plain["summary"] == "no evidence of swapface"
        assert not plain["manifest"]["present"] and not plain["watermark"]["found"]
        junk = tmp_path / "junk.mp4"
        junk.write_bytes(b"not a video at all")
        refused = _post(client, junk, "junk.mp4")
        assert refused.status_code == 415 and refused.json()["detail"].startswith("junk.mp4: ")
        assert "\n" not in refused.json()["detail"] and "uploads" not in refused.json()["detail"]
        assert list((tmp_path / "data" / "uploads").iterdir()) == []  # every checked upload is deleted
        client.headers.clear()
        assert _post(client, UNSWAPPED, "x.jpg").status_code == 401


def test_stored_file_is_verified_in_place(signed_swap: Path, tmp_path: Path) -> None:
    with make_client(tmp_path / "data") as client:
        with open(signed_swap, "rb") as fh:
            stored = client.post("/api/files", files={"file": ("out.png", fh)}).json()
        verdict = client.post(f"/api/files/{stored['id']}/verify").json()
        assert verdict["swapface"] and verdict["manifest"]["valid"] and verdict["path"] == "out.png"
        assert client.post("/api/files/nope/verify").status_code == 404


@pytest.mark.slow
def test_verify_page_in_the_browser(signed_swap: Path, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    assert CHROMIUM.is_file(), "Debian's chromium is missing: apt-get install -y chromium"
    server = Server(tmp_path / "data").start()
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            page = browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(f"{server.url}/login#token={TOKEN}")
            page.get_by_role("link", name="Verify").click()
            expect(page.get_by_role("heading", name="Verify a file")).to_be_visible()
            for path, summary, watermark in ((signed_swap, "swapface output: signed Content Credentials", "found"),
                                             (UNSWAPPED, "no evidence of swapface", "not found")):
                page.get_by_label("Video or photo").set_input_files(path)
                page.get_by_role("button", name="Verify").click()
                expect(page.locator("#verdict-summary")).to_contain_text(summary, timeout=120_000)
                expect(page.locator("#ev-watermark")).to_contain_text(watermark)
            expect(page.locator("#ev-manifest")).to_have_text("none")
            assert errors == []
            browser.close()
    finally:
        server.stop()
