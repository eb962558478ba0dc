"""What the dashboard shows of an artifact's value: text, JSON, markdown (as safe HTML) or an image.

The server reads the artifact's bytes and never unpickles them: a pickled value is shown
as its type and size (loading it would run code a flow wrote, inside the server).
Markdown is rendered with markdown-it (CommonMark, raw HTML off, so whatever the text holds
becomes text, never markup) and link targets limited to http(s), mailto and relative ones.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from kitaru_core.records import ArtifactRecord

#: Values larger than this are not previewed (the page says so and offers the download).
PREVIEW_LIMIT = 2 * 1024 * 1024
#: Image types shown inline, by their first bytes (SVG is not: it may hold script).
IMAGE_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)
#: Markdown is recognised by these artifact types or name suffixes, or by its look.
MARKDOWN_TYPES = {"markdown", "md", "report", "document"}
_MD_SIGNS = ("\n# ", "\n## ", "\n### ", "\n- ", "\n* ", "\n1. ", "**", "```", "](")


@dataclass(frozen=True)
class Preview:
    """`kind` is text | markdown | json | image | python | binary | large."""

    kind: str
    text: str | None = None
    html: str | None = None
    value: Any = None
    media_type: str | None = None
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


def image_type(data: bytes) -> str | None:
    """The media type of a PNG, JPEG, GIF or WebP image, else None."""
    for magic, media in IMAGE_MAGIC:
        if data.startswith(magic):
            return media
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def looks_like_markdown(text: str, record: ArtifactRecord) -> bool:
    kind = str((record.metadata or {}).get("type") or (record.metadata or {}).get("format") or "")
    if kind.lower() in MARKDOWN_TYPES or record.name.lower().endswith((".md", ".markdown")):
        return True
    head = "\n" + text[:4000]
    return head.startswith("\n#") or sum(sign in head for sign in _MD_SIGNS) >= 2


def render_markdown(text: str) -> str:
    """`text` as HTML with no raw HTML passed through and only safe link targets."""
    from markdown_it import MarkdownIt

    md = MarkdownIt("commonmark", {"html": False, "linkify": False})
    md.validateLink = _safe_link
    return md.render(text)


def _safe_link(url: str) -> bool:
    scheme, sep, _ = url.strip().lower().partition(":")
    if not sep or any(c in scheme for c in "/?#"):
        return True  # a relative link
    return scheme in ("http", "https", "mailto")


def _text_preview(text: str, record: ArtifactRecord) -> Preview:
    if looks_like_markdown(text, record):
        return Preview("markdown", text=text, html=render_markdown(text))
    return Preview("text", text=text)


def preview(record: ArtifactRecord, data: bytes) -> Preview:
    """What to show of the artifact `record` whose serialized bytes are `data`."""
    if record.serializer == "pickle":
        return Preview("python", note=f"a pickled {record.type_name} ({record.size} bytes); the "
                                      "server does not unpickle values: load it with "
                                      "`KitaruClient().artifacts.get(id).load()`")
    if record.serializer == "bytes":
        media = image_type(data)
        if media:
            return Preview("image", media_type=media)
        try:
            return _text_preview(data.decode("utf-8"), record)
        except UnicodeDecodeError:
            return Preview("binary", text=data[:256].hex(" "), note=f"{len(data)} bytes")
    if record.serializer == "pydantic":
        ref, _, body = data.partition(b"\n")
        return Preview("json", value=json.loads(body), note=ref.decode(errors="replace"))
    if record.serializer == "json":
        value = json.loads(data)
        if isinstance(value, str):
            return _text_preview(value, record)
        return Preview("json", value=value)
    return Preview("binary", note=f"serializer {record.serializer!r} is not previewed")
