"""The platform over HTTP: a FastAPI app that only translates requests into :class:`Platform`
calls and the platform's refusals into status codes. Every rule (who may see what, when a phase
is open, the day's limit) stays in the platform, so the chapter's in-process use and the service
can never disagree.

Participants send their token as ``Authorization: Bearer <token>``. Errors come back as JSON
``{"detail": "<one line>"}``: 401 for a missing or unknown token, 429 once the day's submissions
are used up, 403 for anything else the platform refuses, 404 for an unknown competition, 422 for a
request the competition's bundle does not know (a phase it has not) or a malformed request.
"""
from __future__ import annotations

from typing import Annotated, Literal

from fastapi import Depends, FastAPI, Form, Header, Request, UploadFile
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel

from .bundle import BundleError
from .platform import OverLimit, Platform, Refused, UnknownToken

# Most specific first: an OverLimit is also a Refused.
STATUS = ((UnknownToken, 401), (OverLimit, 429), (Refused, 403), (KeyError, 404), (BundleError, 422))


def _token(authorization: Annotated[str | None, Header()] = None) -> str:
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise UnknownToken("send your token as 'Authorization: Bearer <token>'")
    return token.strip()


def _maybe_token(authorization: Annotated[str | None, Header()] = None) -> str | None:
    """The leaderboard is public: a token only matters for an organiser's early private view."""
    return _token(authorization) if authorization else None


Token = Annotated[str, Depends(_token)]      # module level: FastAPI resolves annotations here


class NewParticipant(BaseModel):
    name: str
    organiser: bool = False


def make_app(platform: Platform) -> FastAPI:
    """The service over ``platform``. Handlers are plain functions: FastAPI runs them in its thread
    pool, so a slow database call never blocks the event loop."""
    app = FastAPI(title="ai4m benchmarking", description=__doc__)

    def refusal(_request: Request, err: Exception) -> JSONResponse:
        status = next(code for kind, code in STATUS if isinstance(err, kind))
        detail = err.args[0] if err.args else type(err).__name__      # str(KeyError) adds quotes
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        return JSONResponse({"detail": str(detail)}, status_code=status, headers=headers)

    for kind, _ in STATUS:
        app.add_exception_handler(kind, refusal)

    @app.post("/competitions/{slug}/submissions", status_code=201)
    def submit(slug: str, file: UploadFile, phase: Annotated[str, Form()], kind: Annotated[str, Form()],
               token: Token, label: Annotated[str, Form()] = "") -> dict:
        return {"id": platform.submit(token, slug, phase, kind, file.file.read(), label)}

    @app.get("/submissions/{submission_id}")
    def submission(submission_id: int, token: Token) -> dict:
        return platform.submission(token, submission_id)

    @app.get("/submissions/{submission_id}/logs")
    def logs(submission_id: int, token: Token) -> list[dict]:
        return platform.logs(token, submission_id)

    @app.get("/competitions/{slug}/inputs")
    def inputs(slug: str) -> Response:
        """The public inputs (.npz: x_train, y_train, x_test), for result submissions."""
        return Response(platform.public_inputs(slug), media_type="application/octet-stream",
                        headers={"Content-Disposition": f'attachment; filename="{slug}-inputs.npz"'})

    @app.get("/competitions/{slug}/leaderboard/{phase}")
    def leaderboard(slug: str, phase: str, token: Annotated[str | None, Depends(_maybe_token)],
                    split: Literal["public", "private"] = "public") -> list[dict]:
        return platform.leaderboard(slug, phase, split, token)

    @app.post("/participants", status_code=201)
    def participants(new: NewParticipant, token: Token) -> dict:
        return {"token": platform.invite(token, new.name, new.organiser)}

    return app


def serve(data_dir: str, host: str = "127.0.0.1", port: int = 8000, url: str | None = None) -> None:
    """Serve the platform in ``data_dir`` (database at ``url``, SQLite in the folder by default)
    until interrupted. Workers run apart (``ai4m bench work``), so a slow submission never holds
    up the service."""
    import uvicorn

    uvicorn.run(make_app(Platform(data_dir, url)), host=host, port=port, ws="none")     # no websockets
