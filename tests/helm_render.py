"""A minimal renderer of Helm chart templates, for tests (there is no `helm` binary here).

It supports exactly the constructs deploy/helm/kitaru uses, and refuses anything else
with an error naming it, so a template can't silently render differently than Helm would:

- `{{ .Values.a.b }}`, `{{ .Release.Name }}`, `{{ .Chart.Name }}` (a missing value is an
  error, where Helm would print nothing: a typo in a template fails the test);
- pipelines `X | quote`, `toYaml X | nindent N`;
- `{{- if X }}` ... `{{- end }}` (Go's truth: false, 0, "", empty list or map, nil are false);
- `{{-` and `-}}` trim the whitespace (newlines included) before and after the action.

Values print as Go prints them (`true`, `10`); `toYaml` dumps with sorted keys and no
trailing newline, as Helm's does; `quote` writes a double-quoted string.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

_ACTION = re.compile(r"\{\{(-?)\s*(.*?)\s*(-?)\}\}", re.DOTALL)


class TemplateError(Exception):
    """A construct the renderer does not support, or a value the chart does not define."""


def _lookup(path: str, context: dict[str, Any]) -> Any:
    if not path.startswith(".") or path == ".":
        raise TemplateError(f"unsupported term {path!r}: only .Values/.Release/.Chart paths")
    value: Any = context
    for part in path[1:].split("."):
        if not isinstance(value, dict) or part not in value:
            raise TemplateError(f"{path} is not defined (no {part!r})")
        value = value[part]
    return value


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        raise TemplateError(f"a map or list printed without toYaml: {value!r}")
    return str(value)


def _to_yaml(value: Any) -> str:
    return yaml.safe_dump(value, default_flow_style=False, sort_keys=True).rstrip("\n")


def _evaluate(pipeline: str, context: dict[str, Any]) -> Any:
    commands = [c.strip() for c in pipeline.split("|")]
    head = commands[0].split()
    if len(head) == 1:
        value = _lookup(head[0], context)
    elif len(head) == 2 and head[0] == "toYaml":
        value = _to_yaml(_lookup(head[1], context))
    else:
        raise TemplateError(f"unsupported command {commands[0]!r}")
    for command in commands[1:]:
        words = command.split()
        if words == ["quote"]:
            value = json.dumps(_text(value))
        elif words == ["toYaml"]:
            value = _to_yaml(value)
        elif len(words) == 2 and words[0] == "nindent" and words[1].isdigit():
            pad = " " * int(words[1])
            value = "\n" + "\n".join(pad + line if line else line for line in _text(value).split("\n"))
        else:
            raise TemplateError(f"unsupported function {command!r}")
    return value


def _truthy(value: Any) -> bool:
    return bool(value) if not isinstance(value, int | float) or isinstance(value, bool) else value != 0


def render_template(text: str, context: dict[str, Any]) -> str:
    """`text` (one template file) rendered with `context` ({"Values", "Release", "Chart"})."""
    out: list[str] = []
    emitting = [True]  # one entry per open `if`
    pos = 0
    trim_next = False
    for match in _ACTION.finditer(text):
        chunk = text[pos:match.start()]
        if trim_next:
            chunk = chunk.lstrip()
        if match.group(1):
            chunk = chunk.rstrip()
        if all(emitting):
            out.append(chunk)
        trim_next = bool(match.group(3))
        pos = match.end()
        action = match.group(2)
        if action.startswith("if "):
            emitting.append(all(emitting) and _truthy(_evaluate(action[3:], context)))
        elif action == "end":
            if len(emitting) == 1:
                raise TemplateError("`end` without `if`")
            emitting.pop()
        elif action.split()[0] in ("else", "range", "with", "define", "template", "include"):
            raise TemplateError(f"unsupported action {action!r}")
        elif all(emitting):
            out.append(_text(_evaluate(action, context)))
    if len(emitting) != 1:
        raise TemplateError("an `if` without `end`")
    tail = text[pos:]
    out.append(tail.lstrip() if trim_next else tail)
    return "".join(out)


def render_chart(chart: Path, *, release: str = "kitaru", values: dict[str, Any] | None = None
                 ) -> dict[str, str]:
    """Every template of `chart` rendered: {file name: text}. `values` override values.yaml
    (merged key by key, as `helm --values` does)."""
    defaults = yaml.safe_load((chart / "values.yaml").read_text()) or {}
    meta = yaml.safe_load((chart / "Chart.yaml").read_text())
    context = {"Values": _merge(defaults, values or {}),
               "Release": {"Name": release, "Namespace": "default"},
               "Chart": {"Name": meta["name"], "Version": meta["version"],
                         "AppVersion": meta.get("appVersion")}}
    return {p.name: render_template(p.read_text(), context)
            for p in sorted((chart / "templates").glob("*.yaml"))}


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) \
            else value
    return out
