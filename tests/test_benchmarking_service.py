"""The benchmarking platform's HTTP service and CLI client, against a real uvicorn server on a free
local port: what a participant may see, and how each refusal reaches them as a status code."""
from __future__ import annotations

import datetime as dt
import io
import json
import shutil
import socket
import threading
import time

import numpy as np
import pytest

httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi")
pytest.importorskip("multipart")            # python-multipart: FastAPI's form and file uploads
uvicorn = pytest.importorskip("uvicorn")

from ai4m_helpers.benchmarking.platform import Platform, run_workers  # noqa: E402
from ai4m_helpers.benchmarking.service import make_app  # noqa: E402
from ai4m_helpers.cli import main  # noqa: E402
from benchmarking_support import MAJORITY, OPEN_PHASE, PAST_PHASE, bundle  # noqa: E402

# "past" is over, "main" is open until 2100; two counted submissions a day.
BUNDLE = bundle("wine", phases=(PAST_PHASE, OPEN_PHASE), wall_s=30, cpu_s=30, per_day=2)


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    """A platform with one competition, served by uvicorn in a thread; yields (platform, url, tokens)."""
    platform = Platform(tmp_path_factory.mktemp("bench") / "data")
    platform.create("wine", BUNDLE)
    tokens = {name: platform.register(name) for name in ("ada", "bob", "carol")}
    tokens["org"] = platform.register("org", organiser=True)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))                     # a free port, held until uvicorn takes it
    server = uvicorn.Server(uvicorn.Config(make_app(platform), log_level="warning", ws="none"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    yield platform, f"http://127.0.0.1:{sock.getsockname()[1]}", tokens
    server.should_exit = True
    thread.join(10)
    sock.close()
    shutil.rmtree(platform.runs_dir, ignore_errors=True)


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def test_service_over_http(service):
    platform, url, tok = service
    http = httpx.Client(base_url=url, timeout=30)

    def submit(token, payload, kind="code", phase="main", slug="wine"):
        return http.post(f"/competitions/{slug}/submissions", headers=bearer(token),
                         files={"file": ("f", payload)}, data={"phase": phase, "kind": kind, "label": kind})

    code = submit(tok["ada"], MAJORITY)
    bad = submit(tok["ada"], b"id,label\n0,1\n", kind="result")
    assert code.status_code == bad.status_code == 201, (code.text, bad.text)
    code_id, bad_id = code.json()["id"], bad.json()["id"]
    # The past phase's entry goes in through the Platform itself, at a time when that phase was open.
    n = len(platform.load("wine").labels)
    rows = "".join(f"{i},0\n" for i in range(n))
    past_id = platform.submit(tok["bob"], "wine", "past", "result", f"id,label\n{rows}".encode(),
                              now=dt.datetime(2020, 6, 1, tzinfo=dt.timezone.utc))
    assert run_workers(platform, 1) == [code_id, past_id]

    inputs = http.get("/competitions/wine/inputs")          # public: a result file is made from them
    with np.load(io.BytesIO(inputs.content)) as public:
        assert set(public.files) == {"x_train", "y_train", "x_test"} and len(public["x_test"]) == n
    assert http.get("/competitions/nope/inputs").status_code == 404

    mine = http.get(f"/submissions/{code_id}", headers=bearer(tok["ada"])).json()
    assert mine["status"] == "finished" and 0 < mine["public"]["accuracy"] < 1
    logs = http.get(f"/submissions/{code_id}/logs", headers=bearer(tok["ada"])).json()
    assert any(entry["step"] == "scoring" for entry in logs)
    refused = http.get(f"/submissions/{bad_id}", headers=bearer(tok["ada"])).json()
    assert (refused["status"], refused["failure"]) == ("failed", "refused")
    assert refused["message"] == f"expected {n} predictions, got 1"

    # Another participant, an unknown token, no token at all.
    for path in (f"/submissions/{code_id}", f"/submissions/{code_id}/logs"):
        other = http.get(path, headers=bearer(tok["bob"]))
        assert other.status_code == 403 and "another participant" in other.json()["detail"]
        assert http.get(path, headers=bearer("not-a-token")).status_code == 401
        assert http.get(path).status_code == 401
    assert http.get(f"/submissions/{code_id}", headers=bearer(tok["org"])).status_code == 200

    # Unknown competition, unknown phase.
    assert submit(tok["ada"], MAJORITY, slug="nope").status_code == 404
    assert submit(tok["ada"], MAJORITY, phase="nope").status_code == 422

    # The malformed file did not count: one more is accepted, the third counted one is not.
    assert submit(tok["ada"], MAJORITY).status_code == 201
    over = submit(tok["ada"], MAJORITY)
    assert over.status_code == 429 and "the limit is 2" in over.json()["detail"]

    board = "/competitions/wine/leaderboard"
    public = http.get(f"{board}/main").json()
    assert [row["participant"] for row in public] == ["ada"]
    assert http.get(f"{board}/main", params={"split": "private"}).status_code == 403
    early = http.get(f"{board}/main", params={"split": "private"}, headers=bearer(tok["ada"]))
    assert early.status_code == 403 and "when the phase ends" in early.json()["detail"]
    assert http.get(f"{board}/main", params={"split": "private"}, headers=bearer(tok["org"])).status_code == 200
    after = http.get(f"{board}/past", params={"split": "private"})
    assert after.status_code == 200 and [row["submission"] for row in after.json()] == [past_id]
    assert http.get(f"{board}/main", params={"split": "secret"}).status_code == 422

    # Only an organiser registers participants.
    assert http.post("/participants", json={"name": "eve"}, headers=bearer(tok["ada"])).status_code == 403
    new = http.post("/participants", json={"name": "dan"}, headers=bearer(tok["org"]))
    assert new.status_code == 201
    assert http.get(f"/submissions/{code_id}", headers=bearer(new.json()["token"])).status_code == 403
    assert http.post("/participants", json={"name": "dan"}, headers=bearer(tok["org"])).status_code == 403


def test_cli_client(service, tmp_path, capsys):
    _, url, tok = service
    source = tmp_path / "majority.py"
    source.write_bytes(MAJORITY)
    common = ["--server", url, f"--token={tok['carol']}"]    # '=': a token may start with '-'
    assert main(["bench", "submit", *common, "--competition", "wine", "--phase", "main", "--kind", "code",
                 "--label", "from the cli", str(source)]) == 0
    sid = int(capsys.readouterr().out)
    assert main(["bench", "status", *common, str(sid), "--logs"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert (status["id"], status["label"], status["status"], status["logs"]) == (sid, "from the cli", "queued", [])

    # Refusals: one line on stderr and a non-zero exit.
    assert main(["bench", "status", "--server", url, f"--token={tok['bob']}", str(sid)]) == 1
    assert capsys.readouterr().err == "ai4m: error: 403 this submission belongs to another participant\n"
    assert main(["bench", "submit", "--server", url, "--token", "x", "--competition", "wine", "--phase", "main",
                 "--kind", "code", str(source)]) == 1
    assert capsys.readouterr().err == "ai4m: error: 401 unknown token\n"
    assert main(["bench", "submit", *common, "--competition", "wine", "--phase", "past", "--kind", "code",
                 str(source)]) == 1
    assert capsys.readouterr().err == "ai4m: error: 403 phase 'past' is not open\n"


def test_cli_platform_commands(tmp_path, capsys):
    bundle = tmp_path / "wine.yaml"
    bundle.write_text(BUNDLE)
    data = ["--data-dir", str(tmp_path / "data")]
    assert main(["bench", "create", *data, "--slug", "wine", "--bundle", str(bundle)]) == 0
    assert capsys.readouterr().out == "1\n"
    assert main(["bench", "create", *data, "--slug", "wine", "--bundle", str(bundle)]) == 1
    assert capsys.readouterr().err == "ai4m: error: a competition 'wine' exists already\n"
    assert main(["bench", "register", *data, "--name", "ada"]) == 0
    assert len(capsys.readouterr().out.strip()) > 20
    assert main(["bench", "register", *data, "--name", "ada"]) == 1
    assert capsys.readouterr().err == "ai4m: error: the name 'ada' is taken\n"
    bundle.write_text(BUNDLE.replace("wall_s: 30", "wall_s: -1"))
    assert main(["bench", "create", *data, "--slug", "red", "--bundle", str(bundle)]) == 1
    assert capsys.readouterr().err.startswith("ai4m: error: limits/wall_s: ")
