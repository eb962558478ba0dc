"""Artifacts: list an execution's, read one's metadata (and JSON value), download its bytes
with HTTP range requests."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse

from ..responses import json_response
from ..security import require
from ..values import json_value

router = APIRouter(tags=["artifacts"])
#: Bytes read from the artifact store per chunk of a download.
CHUNK = 1024 * 1024
_RANGE = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$")


def _client(request: Request) -> Any:
    return request.app.state.kitaru.client


@router.get("/executions/{exec_id}/artifacts", dependencies=[require("read")],
            response_model=dict[str, Any])
def list_artifacts(request: Request, exec_id: str, name: str | None = None) -> Response:
    """An execution's artifacts in creation order (inputs, outputs, saved values)."""
    found = _client(request).artifacts.list(exec_id, name=name)
    return json_response({"items": [a.to_dict() for a in found]})


@router.get("/artifacts/{artifact_id}", dependencies=[require("read")])
def get_artifact(request: Request, artifact_id: str, value: bool = False) -> dict[str, Any]:
    """An artifact's metadata; with `value=true` also its value, when it is JSON
    (`value_json` says; otherwise `value_repr` is a short text of it)."""
    artifact = _client(request).artifacts.get(artifact_id)
    out = artifact.to_dict()
    if value:
        out.update(json_value(artifact.load()))
    return out


def byte_range(header: str | None, size: int) -> tuple[int, int] | str | None:
    """The inclusive (first, last) byte a `Range` header asks for; None to send everything
    (no header, one we do not serve such as several ranges, or a malformed one, which
    RFC 9110 lets a server ignore); "unsatisfiable" for a range outside the body."""
    if not header:
        return None
    match = _RANGE.match(header)
    if match is None:
        return None
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:  # the last N bytes
        suffix = int(last)
        if suffix == 0:
            return "unsatisfiable"
        return max(0, size - suffix), size - 1
    start = int(first)
    end = size - 1 if not last else min(int(last), size - 1)
    if last and int(last) < start:
        return None  # invalid: ignored
    if start >= size:
        return "unsatisfiable"
    return start, end


@router.get("/artifacts/{artifact_id}/download", dependencies=[require("read")],
            response_class=Response,
            responses={200: {"content": {"application/octet-stream": {}}},
                       206: {"description": "the range asked for"},
                       416: {"description": "a range outside the artifact"}})
def download(request: Request, artifact_id: str) -> Response:
    """The artifact's serialized bytes (as its serializer wrote them), streamed. One byte
    range per request (`Range: bytes=0-1023`, `bytes=-100`) answers 206; a range outside
    the artifact 416. The ETag is the content's sha256 (`If-Range` works with it)."""
    artifact = _client(request).artifacts.get(artifact_id)
    record = artifact._record
    store = request.app.state.kitaru.stack.artifact_store
    size = len(record.data) if record.data is not None else int(record.size)
    etag = f'"{record.key}"'
    headers = {"Accept-Ranges": "bytes", "ETag": etag,
               "Content-Disposition": f'attachment; filename="{artifact.artifact_id}.bin"',
               "X-Kitaru-Serializer": artifact.serializer}
    if_range = request.headers.get("if-range")
    wanted = byte_range(request.headers.get("range"), size)
    if if_range is not None and if_range.strip() != etag:
        wanted = None  # the client's copy is another version: send it all
    if wanted == "unsatisfiable":
        return Response(status_code=416, headers={**headers, "Content-Range": f"bytes */{size}"})
    first, last = (0, size - 1) if wanted is None else wanted
    status = 200 if wanted is None else 206
    if status == 206:
        headers["Content-Range"] = f"bytes {first}-{last}/{size}"
    headers["Content-Length"] = str(max(0, last - first + 1))

    def chunks() -> Iterator[bytes]:
        pos = first
        while pos <= last:
            upto = min(last + 1, pos + CHUNK)
            if record.data is not None:
                data = record.data[pos:upto]
            else:
                data = store.get_range(record.key, pos, upto)
            if not data:
                return
            yield data
            pos += len(data)

    if size == 0:
        return Response(b"", status_code=200, headers=headers, media_type="application/octet-stream")
    return StreamingResponse(chunks(), status_code=status, headers=headers,
                             media_type="application/octet-stream")
