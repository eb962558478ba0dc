"""Where remote tasks and runners get the project's code: the stack's `code` key.

    code: {source: package}              # the default: a zip uploaded to the artifact store
    code: {source: image, path: /app}    # already in the image, at `path`; nothing uploaded

With `source: image` the runner computes the digest of its own project (the files a
code package would hold, `runtime.code_package.code_digest`) and puts it in each task
spec and runner launch; the worker (or remote runner) computes the digest of the code
at `path` in its image and refuses to run when they differ. `kitaru image dockerfile`
copies the project to `path` in a build context.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from .errors import ConfigError

#: Where `kitaru image dockerfile` puts the project in the image unless the stack says.
DEFAULT_IMAGE_PATH = "/app"


class CodeSource(BaseModel):
    """The stack's `code` key."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    source: Literal["package", "image"] = "package"
    path: str = DEFAULT_IMAGE_PATH

    @field_validator("path")
    @classmethod
    def _absolute(cls, value: str) -> str:
        if not value.startswith("/") or "\\" in value or "\0" in value:
            raise ValueError(
                f"path must be an absolute POSIX path inside the image, like /app (got {value!r})"
            )
        return value.rstrip("/") or "/"

    @property
    def in_image(self) -> bool:
        return self.source == "image"


def code_source(spec: dict[str, Any]) -> CodeSource:
    """The `code` of a (validated) stack spec; the default when it says nothing."""
    raw = spec.get("code")
    return CodeSource.model_validate(raw) if raw else CodeSource()


def validate_code(raw: Any, source: str) -> dict[str, Any]:
    """The stack file's `code` value checked and normalized; `ConfigError` naming the problem."""
    if isinstance(raw, str):  # shorthand: `code: image`
        raw = {"source": raw}
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{source}: `code` must be a mapping like {{source: image, path: /app}} "
            f"(got {type(raw).__name__})"
        )
    try:
        model = CodeSource.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        if err["type"] == "extra_forbidden":
            problem = f"unknown key {loc!r} (allowed keys: source, path)"
        elif err["type"] == "literal_error":
            problem = f"`{loc}` must be `package` or `image` (got {err.get('input')!r})"
        else:
            problem = f"`{loc}`: {err['msg'].removeprefix('Value error, ')}"
        raise ConfigError(f"{source}: `code`: {problem}") from None
    return model.model_dump()
