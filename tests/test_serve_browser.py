"""The web UI end to end in real headless Chromium (Debian's), driven by Playwright: upload two clips,
extract, train the tiny preset a few steps, swap, watch the result play, read the report."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.conftest import VIDEOS
from tests.serve_helpers import TOKEN, Server

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
JOB_TIMEOUT_MS = 600_000
SCREENSHOTS = Path(__file__).resolve().parents[1] / "test-artifacts" / "serve-browser"  # gitignored


@pytest.mark.slow
def test_a_person_swaps_faces_in_the_browser(tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    assert CHROMIUM.is_file(), "Debian's chromium is missing: apt-get install -y chromium"
    shots = SCREENSHOTS
    shutil.rmtree(shots, ignore_errors=True)
    shots.mkdir(parents=True)
    server = Server(tmp_path / "data").start()
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 412, "height": 915})  # a phone's screen
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))

            page.goto(f"{server.url}/login#token={TOKEN}")  # the link `swapface serve` prints
            expect(page.get_by_role("heading", name="Projects")).to_be_visible()
            page.get_by_label("New project").fill("browser test")
            page.get_by_role("button", name="Create project").click()
            expect(page.get_by_role("heading", name="browser test")).to_be_visible()

            for side, clip in (("a", "lp_d1.mp4"), ("b", "lp_d2.mp4")):
                card = page.locator(f'.side[data-side="{side}"]')
                card.locator(".file-input").set_input_files(VIDEOS / clip)
                expect(card.locator(".uploads li")).to_contain_text(f"{clip}ready")
                card.get_by_label("Face size").select_option("64")
                card.get_by_role("button", name="Extract faces").click()
            page.screenshot(path=shots / "1-uploaded.png", full_page=True)
            for side in "ab":  # done, not only 16 faces shown: the last faces land before the job ends
                card = page.locator(f'.side[data-side="{side}"]')
                expect(card.locator(".job-status .state-done")).to_be_visible(timeout=JOB_TIMEOUT_MS)
                expect(card.locator(".count")).to_have_text("16 faces")
            face = page.locator('.side[data-side="a"] .faces button').first
            face.click()  # remove a bad face with a click
            expect(page.locator('.side[data-side="a"] .count')).to_have_text("15 faces")
            page.screenshot(path=shots / "2-faces.png", full_page=True)

            form = page.locator("#train-form")
            form.get_by_label("Preset").select_option("tiny")
            form.get_by_label("Time budget (minutes)").fill("")
            form.get_by_label("Steps (optional)").fill("10")
            form.get_by_role("button", name="Start training").click()
            expect(page.locator("#train-status")).to_contain_text("step 10 of 10", timeout=JOB_TIMEOUT_MS)
            expect(page.locator("#train-status .state-done")).to_be_visible(timeout=JOB_TIMEOUT_MS)
            expect(page.locator("#train-preview")).to_be_visible()
            expect(page.locator("#train-controls")).to_be_hidden()  # nothing to pause once done
            page.screenshot(path=shots / "3-trained.png", full_page=True)

            page.reload()  # everything comes back from the API
            expect(page.locator('.side[data-side="b"] .count')).to_have_text("16 faces")
            expect(page.locator("#train-status .state-done")).to_be_visible()

            page.get_by_role("button", name="Preview one frame").click()
            expect(page.locator("#frame-preview img")).to_be_visible(timeout=JOB_TIMEOUT_MS)
            page.get_by_role("button", name="Swap the video").click()
            expect(page.locator("#result")).to_be_visible(timeout=JOB_TIMEOUT_MS)
            page.wait_for_function("document.getElementById('swapped-video').duration > 0")
            page.get_by_role("button", name="Play", exact=True).click()
            page.wait_for_function("document.getElementById('swapped-video').currentTime > 0")
            page.locator("#split").fill("30")
            expect(page.locator("#download")).to_have_attribute("href", "/api/files/" + _last_file(page) +
                                                                "?download=true")
            page.screenshot(path=shots / "4-swapped.png", full_page=True)

            page.get_by_role("button", name="Evaluate the swap").click()
            expect(page.locator("#report")).to_be_visible(timeout=JOB_TIMEOUT_MS)
            report = page.frame_locator("#report-frame")
            expect(report.locator("body")).to_contain_text("closer", timeout=30_000)
            page.screenshot(path=shots / "5-report.png", full_page=True)
            assert errors == []
            browser.close()
    finally:
        server.stop()
    assert sorted(p.name for p in shots.iterdir()) == [
        "1-uploaded.png", "2-faces.png", "3-trained.png", "4-swapped.png", "5-report.png"]
    print(f"screenshots in {shots}")


def _last_file(page) -> str:
    return page.evaluate("document.getElementById('swapped-video').getAttribute('src').split('/').pop()")
