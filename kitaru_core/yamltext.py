"""YAML text to plain values, parsed by libyaml when PyYAML was built with it.

libyaml's safe loader builds the same values as PyYAML's pure-Python one, about
ten times faster: a stack file is read on every `flow.run()`.
"""

from __future__ import annotations

from typing import Any

import yaml

_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def safe_load(text: str) -> Any:
    """The value of one YAML document (`yaml.safe_load`'s result); raises `yaml.YAMLError`."""
    return yaml.load(text, Loader=_LOADER)  # a safe loader, the C one or the Python one
