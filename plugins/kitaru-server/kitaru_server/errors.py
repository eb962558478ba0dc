"""kitaru errors as HTTP responses: `{"error": <type>, "detail": <one line>}` with a fitting status."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import JSONResponse

from kitaru_core import errors as e

from .keys import AuthError, NotFoundError

#: The first matching class decides (subclasses before their bases).
STATUS: tuple[tuple[type[BaseException], int], ...] = (
    (AuthError, 401),
    (NotFoundError, 404),
    (e.ExecutionNotFoundError, 404),
    (e.ArtifactNotFoundError, 404),
    (e.MemoryNotFoundError, 404),
    (e.StackNotFoundError, 404),
    (e.DeploymentNotFoundError, 404),
    (e.SecretNotFoundError, 404),
    (e.SecretKeyError, 500),  # the server's KITARU_SECRETS_KEY is missing or not the registry's
    (e.DocumentConflictError, 409),
    (e.ExecutionOwnedError, 409),
    (e.InvalidStateError, 409),
    (e.ResumeFailedError, 409),
    (e.InvalidValueError, 422),
    (e.WaitInputError, 422),
    (e.FlowInputError, 422),
    (e.ConfigError, 400),
    (e.KitaruError, 400),
)


def status_of(exc: BaseException) -> int:
    for cls, status in STATUS:
        if isinstance(exc, cls):
            return status
    return 500


async def kitaru_error(request: Request, exc: Exception) -> JSONResponse:
    """The handler for every `KitaruError` a route raises."""
    detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return JSONResponse({"error": type(exc).__name__, "detail": detail}, status_code=status_of(exc))
