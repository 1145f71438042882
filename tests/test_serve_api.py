"""The job API of `swapface serve`: auth, uploads, validation, jobs end to end, kill and restart."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from swapface.eval.evaluate import EvalOptions
from swapface.faceset.extract import ExtractOptions
from swapface.jobs import stages
from swapface.jobs.options import KINDS
from swapface.media.writer import read_synthetic_tag
from swapface.model.config import PRESETS
from swapface.serve.app import create_app
from swapface.serve.config import ServeConfig
from swapface.swap.options import SwapOptions
from swapface.train.options import TRAIN_PRECISIONS, TrainOptions
from tests.conftest import VIDEOS
from tests.serve_helpers import TOKEN, Server, submit, upload, wait_for

AUTH = {"Authorization": f"Bearer {TOKEN}"}
CLIP_A, CLIP_B = VIDEOS / "lp_d1.mp4", VIDEOS / "lp_d2.mp4"  # 16 frames each
EXTRACT = {"size": 64, "min_face": 40}


def make_client(data: Path, run_jobs: bool = False, **config) -> TestClient:
    app = create_app(ServeConfig(data=data, token=TOKEN, run_jobs=run_jobs, gpus=(), **config))
    return TestClient(app, headers=AUTH)


@pytest.fixture
def client(tmp_path: Path) -> TestClient:
    with make_client(tmp_path / "data") as c:
        yield c


def stored_files(data: Path) -> list[Path]:
    return sorted(p for p in (data / "files").iterdir())


PROTECTED = [("get", "/api/projects"), ("post", "/api/projects"), ("get", "/api/projects/x"),
             ("post", "/api/files"), ("get", "/api/files"), ("get", "/api/files/x"), ("get", "/api/files/x/info"),
             ("post", "/api/uploads"), ("get", "/api/uploads/x"), ("patch", "/api/uploads/x"),
             ("post", "/api/verify"), ("post", "/api/files/x/verify"),
             ("post", "/api/jobs"), ("get", "/api/jobs"), ("get", "/api/jobs/x"), ("get", "/api/jobs/x/events"),
             ("delete", "/api/jobs/x"), ("post", "/api/jobs/x/pause"), ("post", "/api/jobs/x/resume"),
             ("post", "/api/jobs/x/stop"), ("get", "/api/jobs/x/faces"), ("get", "/api/jobs/x/faces/f.png"),
             ("delete", "/api/jobs/x/faces/f.png"), ("get", "/api/jobs/x/metrics"), ("get", "/api/jobs/x/preview")]


def test_health_needs_no_token_and_everything_else_does(tmp_path: Path) -> None:
    with make_client(tmp_path / "data") as c:
        c.headers.clear()
        assert c.get("/api/health").json() == {"status": "ok"}
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}):
            for method, path in PROTECTED:
                response = c.request(method, path, headers=headers)
                assert response.status_code == 401, (method, path, headers)
                assert response.headers["www-authenticate"] == "Bearer"
        assert c.get("/api/jobs", headers=AUTH).status_code == 200
        assert c.get("/openapi.json").status_code == 200  # the docs at /docs


def test_browser_cookie_needs_the_header_other_sites_cannot_send(tmp_path: Path) -> None:
    with make_client(tmp_path / "data") as c:
        c.headers.clear()
        assert c.post("/api/session", json={"token": "wrong"}).status_code == 401
        assert c.post("/api/session", json={"token": TOKEN}).status_code == 204
        assert c.get("/api/projects").status_code == 200  # reads with the cookie
        assert c.post("/api/projects", json={"name": "p"}).status_code == 401  # a forged cross-site form
        assert c.post("/api/projects", json={"name": "p"}, headers={"X-Swapface": "1"}).status_code == 201


def test_upload_and_download_keep_the_bytes(client: TestClient, tmp_path: Path) -> None:
    project = client.post("/api/projects", json={"name": "interview"}).json()
    with open(CLIP_A, "rb") as fh:
        response = client.post("/api/files", files={"file": ("clip.mp4", fh)}, data={"project": project["id"],
                                                                                      "label": "a"})
    assert response.status_code == 201, response.text
    info = response.json()
    assert (info["kind"], info["name"], info["label"]) == ("video", "clip.mp4", "a")
    assert info["size"] == CLIP_A.stat().st_size
    download = client.get(f"/api/files/{info['id']}")
    assert download.status_code == 200 and download.content == CLIP_A.read_bytes()
    assert download.headers["content-type"] == "video/mp4"
    assert client.get(f"/api/files/{info['id']}", headers={"Range": "bytes=0-99"}).status_code == 206
    listed = client.get("/api/projects/" + project["id"]).json()
    assert [f["id"] for f in listed["files"]] == [info["id"]]
    assert client.get("/api/files/" + "0" * 32).status_code == 404


def test_an_image_is_stored_as_an_image(client: TestClient, data_dir: Path) -> None:
    still = sorted((data_dir / "stills").glob("*.jpg"))[0]
    with open(still, "rb") as fh:
        info = client.post("/api/files", files={"file": ("photo.bin", fh)}).json()
    assert info["kind"] == "image"
    assert client.get(f"/api/files/{info['id']}").headers["content-type"] == "image/jpeg"


def test_upload_over_the_limit_is_refused_and_leaves_nothing(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with make_client(data, max_upload=10_000) as c:
        with open(CLIP_A, "rb") as fh:
            response = c.post("/api/files", files={"file": ("big.mp4", fh)})
        assert response.status_code == 413
        assert c.post("/api/uploads", json={"name": "big.mp4", "size": 10_001}).status_code == 413
        assert stored_files(data) == [] and list((data / "uploads").iterdir()) == []


def test_a_file_that_is_not_media_is_refused(client: TestClient, tmp_path: Path) -> None:
    data = tmp_path / "data"
    response = client.post("/api/files", files={"file": ("notes.mp4", b"this is text, not a video\n" * 100)})
    assert response.status_code == 415
    assert response.json()["detail"].startswith("notes.mp4: ")
    assert "\n" not in response.json()["detail"]
    truncated = CLIP_A.read_bytes()[: CLIP_A.stat().st_size // 2]
    assert client.post("/api/files", files={"file": ("cut.mp4", truncated)}).status_code == 415
    assert stored_files(data) == [] and list((data / "uploads").iterdir()) == []
    assert client.get("/api/files").json() == []


def test_a_client_file_name_is_never_a_path(client: TestClient, tmp_path: Path) -> None:
    data = tmp_path / "data"
    with open(CLIP_A, "rb") as fh:
        info = client.post("/api/files", files={"file": ("../../x", fh)}).json()
    assert info["name"] == "x"
    assert not (tmp_path / "x").exists() and not (data.parent / "x").exists()
    assert [p.name for p in stored_files(data)] == [f"{info['id']}.mp4"]
    assert client.get(f"/api/files/{info['id']}").content == CLIP_A.read_bytes()


def test_resumable_upload_survives_a_server_restart(tmp_path: Path) -> None:
    data, content = tmp_path / "data", CLIP_B.read_bytes()
    half = len(content) // 2
    with make_client(data) as c:
        upload_id = c.post("/api/uploads", json={"name": "b.mp4", "size": len(content), "label": "b"}).json()["id"]
        response = c.patch(f"/api/uploads/{upload_id}", content=content[:half], headers={"Upload-Offset": "0"})
        assert response.json() == {"id": upload_id, "offset": half, "size": len(content), "done": False}
        assert c.get(f"/api/files/{upload_id}").status_code == 404  # not downloadable until complete
    with make_client(data) as c:  # a new server on the same data folder
        assert c.get(f"/api/uploads/{upload_id}").json()["offset"] == half
        wrong = c.patch(f"/api/uploads/{upload_id}", content=content[half:], headers={"Upload-Offset": "0"})
        assert wrong.status_code == 409 and wrong.headers["upload-offset"] == str(half)
        done = c.patch(f"/api/uploads/{upload_id}", content=content[half:], headers={"Upload-Offset": str(half)})
        assert done.status_code == 200 and done.json()["done"] and done.json()["file"]["kind"] == "video"
        assert c.get(f"/api/files/{upload_id}").content == content
        too_much = c.patch(f"/api/uploads/{upload_id}", content=b"x", headers={"Upload-Offset": str(len(content))})
        assert too_much.status_code == 409


def test_job_requests_are_validated(client: TestClient) -> None:
    video = upload(client, CLIP_A)
    for body in ({"kind": "paint", "inputs": {}}, {"kind": "extract", "inputs": {"files": []}},
                 {"kind": "extract", "inputs": {"files": [video]}, "options": {"sise": 64}},
                 {"kind": "extract", "inputs": {"files": [video]}, "options": {"size": 32}},
                 {"kind": "extract", "inputs": {"files": ["nope"]}},
                 {"kind": "train", "inputs": {"a": "x", "b": "y"}, "options": {"steps": 5}},
                 {"kind": "swap", "inputs": {"model": "x", "video": video}, "options": {"blend": "smudge"}},
                 {"kind": "extract", "inputs": {"files": [video]}, "project": "no-such-project"}):
        response = client.post("/api/jobs", json=body)
        assert response.status_code in (404, 422), (body, response.text)
    extract_job = submit(client, "extract", {"files": [video]}, EXTRACT)
    no_end = client.post("/api/jobs", json={"kind": "train", "inputs": {"a": extract_job, "b": extract_job}})
    assert no_end.status_code == 422 and "steps or time_limit" in no_end.text
    huge = client.post("/api/jobs", json={"kind": "train", "inputs": {"a": extract_job, "b": extract_job},
                                          "options": {"preset": "huge", "steps": 5}})
    assert huge.status_code == 422 and f"preset must be one of {', '.join(PRESETS)}" in huge.text
    fp16 = client.post("/api/jobs", json={"kind": "train", "inputs": {"a": extract_job, "b": extract_job},
                                          "options": {"precision": "fp16", "steps": 5}})
    assert fp16.status_code == 422 and f"precision must be one of {', '.join(TRAIN_PRECISIONS)}" in fp16.text
    smudge = client.post("/api/jobs", json={"kind": "swap", "inputs": {"model": extract_job, "video": video},
                                            "options": {"blend": "smudge", "mask": "all"}})
    assert smudge.status_code == 422 and "blend must be one of" in smudge.text


def test_cancel_a_queued_job_and_its_dependants_fail(client: TestClient, tmp_path: Path) -> None:
    video = upload(client, CLIP_A)
    first = submit(client, "extract", {"files": [video]}, EXTRACT)
    train = submit(client, "train", {"a": first, "b": first}, {"steps": 5})
    job = client.get(f"/api/jobs/{first}").json()
    assert {k: job[k] for k in ("kind", "state", "progress", "outputs", "error")} == \
        {"kind": "extract", "state": "queued", "progress": 0.0, "outputs": {}, "error": None}
    assert client.delete(f"/api/jobs/{first}").json()["state"] == "cancelled"
    assert client.delete(f"/api/jobs/{first}").status_code == 409
    assert client.post(f"/api/jobs/{first}/pause").status_code == 409  # not a training job
    from swapface.jobs.scheduler import Scheduler

    scheduler = Scheduler(client.app.state.store, client.app.state.data, gpus=[])
    scheduler.tick()
    job = client.get(f"/api/jobs/{train}").json()
    assert job["state"] == "failed" and job["error"] == f"input job {first} cancelled"
    events = client.get(f"/api/jobs/{train}/events")
    assert events.headers["content-type"].startswith("text/event-stream")
    assert json.loads(events.text.split("data: ")[1])["state"] == "failed"


@pytest.mark.slow
def test_jobs_run_end_to_end_in_worker_processes(tmp_path: Path) -> None:
    """extract both clips, train the tiny preset, swap, evaluate; faces, curves, previews, events."""
    with make_client(tmp_path / "data", run_jobs=True) as c:
        a, b = upload(c, CLIP_A), upload(c, CLIP_B)
        ea = submit(c, "extract", {"files": [a]}, EXTRACT)
        eb = submit(c, "extract", {"files": [b]}, EXTRACT)
        train = submit(c, "train", {"a": ea, "b": eb}, {"preset": "tiny", "steps": 15, "batch_size": 4,
                                                        "log_every": 5, "preview_every": 5})
        swap = submit(c, "swap", {"model": train, "video": a})
        preview = submit(c, "swap", {"model": train, "video": a}, {"preview_at": 0.2, "blend": "feather"})
        evaluation = submit(c, "eval", {"swap": swap}, {"min_face": 40})
        first = wait_for(c, ea)
        assert first["state"] == "done" and first["outputs"]["faces"] == 16, first
        faces = c.get(f"/api/jobs/{ea}/faces").json()
        assert faces["count"] == 16
        name = faces["faces"][0]["name"]
        assert c.get(f"/api/jobs/{ea}/faces/{name}").content[:8] == b"\x89PNG\r\n\x1a\n"
        assert c.get(f"/api/jobs/{ea}/faces/..%2Ffaceset.sqlite").status_code == 404
        assert c.delete(f"/api/jobs/{ea}/faces/{name}").json()["count"] == 15

        wait_for(c, train, until=lambda job: job["info"].get("step", 0) >= 5, timeout=600)
        assert c.post(f"/api/jobs/{train}/pause").json()["state"] == "paused"
        scheduler = c.app.state.scheduler
        deadline = time.monotonic() + 300
        while train in scheduler.running and time.monotonic() < deadline:  # the worker saves and exits
            time.sleep(0.2)
        assert train not in scheduler.running and c.get(f"/api/jobs/{train}").json()["state"] == "paused"
        assert c.post(f"/api/jobs/{train}/resume").json()["state"] == "queued"
        events = c.get(f"/api/jobs/{train}/events").text  # streams until the job ends
        states = [json.loads(line[6:])["state"] for line in events.splitlines() if line.startswith("data: ")]
        assert states[-1] == "done" and "running" in states, states
        job = c.get(f"/api/jobs/{train}").json()
        assert job["outputs"] == {"step": 15} and job["progress"] == 1.0
        resumed = [m for m in job["info"]["messages"] if m.startswith("resumed")]
        paused_at = int(resumed[-1].rsplit(" ", 1)[1]) if resumed else 0
        assert 5 <= paused_at <= 15, job["info"]  # the pause saved at the step it came (not at a sync point)
        steps = [row["step"] for row in c.get(f"/api/jobs/{train}/metrics").json()]
        assert steps == sorted(set(steps)) and {5, paused_at, 15} <= set(steps), steps
        assert c.get(f"/api/jobs/{train}/preview").headers["content-type"] == "image/png"

        swapped = wait_for(c, swap)
        assert swapped["state"] == "done", swapped
        video = c.get(f"/api/files/{swapped['outputs']['file']}")
        out = tmp_path / "swapped.mp4"
        out.write_bytes(video.content)
        assert read_synthetic_tag(out)
        still = wait_for(c, preview)
        assert c.get(f"/api/files/{still['outputs']['file']}").content[:4] == b"\x89PNG"

        report = wait_for(c, evaluation)
        assert report["state"] == "done", report
        html = c.get(f"/api/files/{report['outputs']['report']}")
        assert html.headers["content-type"].startswith("text/html") and "<html" in html.text.lower()
        numbers = c.get(f"/api/files/{report['outputs']['json']}").json()
        assert numbers["video"]["frames"]["total"] == 16


TRAIN_STEPS = 300  # long enough that the kill lands mid-training on an idle machine (20 steps take ~2 s)


@pytest.mark.slow
def test_training_survives_sigkill_of_the_server(tmp_path: Path) -> None:
    """SIGKILL `swapface serve` mid-training: after a restart the job resumes from its checkpoint and ends."""
    data = tmp_path / "data"
    server = Server(data).start()
    try:
        with server.client() as c:
            ea = submit(c, "extract", {"files": [upload(c, CLIP_A)]}, EXTRACT)
            eb = submit(c, "extract", {"files": [upload(c, CLIP_B)]}, EXTRACT)
            train = submit(c, "train", {"a": ea, "b": eb}, {"preset": "tiny", "steps": TRAIN_STEPS, "batch_size": 2,
                                                            "save_every": 5, "log_every": 5, "preview_every": 20})
            queued = submit(c, "swap", {"model": train, "video": upload(c, CLIP_B)}, {"direction": "b2a"})
            wait_for(c, train, until=lambda job: job["info"].get("step", 0) >= 10, timeout=600)
        server.kill()
    finally:
        server.stop()
    server = Server(data).start()  # the same data folder, as after a crash
    try:
        with server.client() as c:
            job = wait_for(c, train, timeout=600)
            assert job["state"] == "done" and job["outputs"]["step"] == TRAIN_STEPS, job
            resumed = [m for m in job["info"]["messages"] if m.startswith("resumed")]
            assert resumed and int(resumed[-1].rsplit(" ", 1)[1]) >= 10, job["info"]
            assert wait_for(c, queued)["state"] == "done"  # the job queued behind it ran too
            assert c.get(f"/api/jobs/{ea}").json()["outputs"]["faces"] == 16  # finished outputs are still there
    finally:
        server.stop()


def test_pages_need_the_sign_in_and_ship_their_assets(tmp_path: Path) -> None:
    with make_client(tmp_path / "data") as c:
        c.headers.clear()
        assert c.get("/", follow_redirects=False).headers["location"] == "/login"
        assert "Access token" in c.get("/login").text
        c.post("/api/session", json={"token": TOKEN})
        project = c.post("/api/projects", json={"name": "<b>scene 12</b>"}, headers={"X-Swapface": "1"}).json()
        index = c.get("/").text
        assert "&lt;b&gt;scene 12&lt;/b&gt;" in index and "<b>scene" not in index  # names are escaped
        page = c.get(f"/projects/{project['id']}").text
        for asset in ("/static/app.js", "/static/project.js", "/static/app.css", "/static/vendor/chart.min.js"):
            assert asset in page or asset in index
            assert c.get(asset).status_code == 200, asset
        assert "http://" not in page and "https://" not in page  # nothing loads from elsewhere
        assert c.get("/projects/nope").status_code == 404


def test_training_jobs_pause_resume_and_stop(client: TestClient) -> None:
    extract_job = submit(client, "extract", {"files": [upload(client, CLIP_A)]}, EXTRACT)
    train = submit(client, "train", {"a": extract_job, "b": extract_job}, {"preset": "tiny", "steps": 5})
    assert client.post(f"/api/jobs/{train}/pause").json()["state"] == "paused"
    assert client.post(f"/api/jobs/{train}/pause").status_code == 409
    assert client.post(f"/api/jobs/{train}/resume").json()["state"] == "queued"
    assert client.post(f"/api/jobs/{train}/resume").status_code == 409
    assert client.post(f"/api/jobs/{train}/stop").json()["state"] == "cancelled"  # nothing trained to keep
    assert client.get(f"/api/jobs/{train}/metrics").json() == []
    assert client.get(f"/api/jobs/{train}/preview").status_code == 404
    assert client.get(f"/api/jobs/{extract_job}/metrics").status_code == 409


def test_the_token_is_made_once_and_kept_private(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from swapface.serve.auth import TOKEN_ENV, load_token

    monkeypatch.delenv(TOKEN_ENV, raising=False)
    token, new = load_token(tmp_path)
    assert new and len(token) >= 32 and (tmp_path / "token").stat().st_mode & 0o077 == 0
    assert load_token(tmp_path) == (token, False)
    monkeypatch.setenv(TOKEN_ENV, "from-the-environment")
    assert load_token(tmp_path) == ("from-the-environment", False)


def test_one_gpu_job_per_device_and_a_cpu_limit(tmp_path: Path) -> None:
    from swapface.jobs.layout import DataDir
    from swapface.jobs.scheduler import Scheduler, _Running
    from swapface.jobs.store import Job, Store, sqlite_url

    def job(kind: str, **options) -> Job:
        return Job(kind=kind, inputs={}, options=options)

    scheduler = Scheduler(Store(sqlite_url(tmp_path)), DataDir(tmp_path), cpu_jobs=2,
                          gpus=["cuda:0", "cuda:1", "cuda:2"])
    assert scheduler._free_devices(job("train")) == ["cuda:0"]
    scheduler.running["t1"] = _Running(None, "cuda:0")
    assert scheduler._free_devices(job("train", gpus=2)) == ["cuda:1", "cuda:2"]  # data-parallel on two
    scheduler.running["t2"] = _Running(None, "cuda:1,cuda:2")
    assert scheduler._free_devices(job("swap")) is None  # waits for a GPU
    del scheduler.running["t1"]
    assert scheduler._free_devices(job("train", gpus=2)) is None  # one free: waits for the second
    assert scheduler._free_devices(job("swap")) == ["cuda:0"]
    assert scheduler._unrunnable(job("train", gpus=4)) == "the job asks for 4 GPUs; this server has 3"
    assert scheduler._free_devices(job("extract")) == ["cpu"]
    scheduler.running["e1"] = _Running(None, "cpu")
    assert scheduler._free_devices(job("eval")) == ["cpu"]
    scheduler.running["e2"] = _Running(None, "cpu")
    assert scheduler._free_devices(job("extract")) is None
    cpu_only = Scheduler(scheduler.store, scheduler.data, gpus=[])
    assert cpu_only._free_devices(job("train", gpus=2)) == ["cpu"]
    assert cpu_only._unrunnable(job("train", gpus=2)) is None


@pytest.mark.slow
def test_a_training_job_trains_data_parallel_on_two_ranks(tmp_path: Path) -> None:
    """`gpus: 2` on a server without GPUs: two gloo ranks on the CPU, the job's worker being rank 0."""
    with make_client(tmp_path / "data", run_jobs=True) as c:
        a, b = upload(c, CLIP_A), upload(c, CLIP_B)
        ea, eb = submit(c, "extract", {"files": [a]}, EXTRACT), submit(c, "extract", {"files": [b]}, EXTRACT)
        train = submit(c, "train", {"a": ea, "b": eb}, {"preset": "tiny", "steps": 5000, "batch_size": 4,
                                                        "log_every": 2, "gpus": 2})
        wait_for(c, train, until=lambda job: job["info"].get("step", 0) >= 4, timeout=600)
        assert c.post(f"/api/jobs/{train}/stop").status_code == 200  # rank 0 hears it; the ranks vote to stop
        job = wait_for(c, train, timeout=300)
        assert job["state"] == "done" and 4 <= job["outputs"]["step"] < 5000, job
        assert any("4 per identity per rank x 2 rank(s) = 8 per identity" in m for m in job["info"]["messages"]), job
        steps = [row["step"] for row in c.get(f"/api/jobs/{train}/metrics").json()]
        assert steps[:2] == [2, 4] and steps[-1] <= job["outputs"]["step"], steps
        deadline = time.monotonic() + 120
        while train in c.app.state.scheduler.running and time.monotonic() < deadline:  # rank 0 reaps rank 1
            time.sleep(0.2)
        assert train not in c.app.state.scheduler.running
        assert (tmp_path / "data" / "jobs" / train / "model" / "model.safetensors").is_file()


def test_a_project_token_reaches_its_project_only(client: TestClient) -> None:
    mine, other = (client.post("/api/projects", json={"name": name}).json()["id"] for name in ("mine", "other"))
    theirs = upload(client, CLIP_A, project=other)
    their_job = client.post("/api/jobs", json={"kind": "extract", "inputs": {"files": [theirs]}, "project": other})
    token = client.post(f"/api/projects/{mine}/tokens").json()["token"]
    as_project = {"Authorization": f"Bearer {token}"}
    assert [p["id"] for p in client.get("/api/projects", headers=as_project).json()] == [mine]
    for path in (f"/api/projects/{other}", f"/api/files/{theirs}", f"/api/files/{theirs}/info",
                 f"/api/uploads/{theirs}", f"/api/jobs/{their_job.json()['id']}"):
        assert client.get(path, headers=as_project).status_code == 404, path
    assert client.get("/api/files", headers=as_project).json() == []
    assert client.get("/api/jobs", headers=as_project).json() == []
    refused = client.post("/api/jobs", headers=as_project, json={"kind": "extract", "inputs": {"files": [theirs]}})
    assert refused.status_code == 422  # another project's file is not an input it can name
    with open(CLIP_B, "rb") as fh:
        own = client.post("/api/files", headers=as_project, files={"file": ("b.mp4", fh)}).json()
    assert own["project"] == mine  # new rows land in the token's project
    assert client.post("/api/projects", headers=as_project, json={"name": "x"}).status_code == 403
    assert client.post(f"/api/projects/{other}/tokens", headers=as_project).status_code == 403
    assert len(client.get("/api/files").json()) == 2  # the server's token still sees everything


def test_a_job_that_gives_no_options_runs_the_stages_defaults():
    """A served job left at its defaults extracts, trains, swaps and evaluates as the library and the CLI do;
    training differs only where a served job has its own reason (no snapshot folders, previews more often)."""
    def job(kind: str, **options):
        return KINDS[kind][1].model_validate(options)

    assert stages.extract_options(job("extract"), workers=3) == ExtractOptions(workers=3)
    assert stages.train_options(job("train", steps=10), "cpu", None) == TrainOptions(
        steps=10, device="cpu", snapshot_every=0, preview_every=100)
    assert stages.train_options(job("train", time_limit=2), "cpu", 120.0).time_limit == 120.0  # minutes -> s
    assert stages.swap_options(job("swap"), "cpu", 0.0, None) == SwapOptions(device="cpu")
    assert stages.eval_options(job("eval"), workers=3) == EvalOptions(workers=3)
