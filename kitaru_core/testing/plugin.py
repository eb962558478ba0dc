"""pytest plugin of the conformance kits: the `requires` marker and shared options.

Enable it from a conftest with `pytest_plugins = ["kitaru_core.testing.plugin"]`.
"""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("kitaru")
    group.addoption(
        "--kitaru-require-backends", action="store_true", default=False,
        help="fail (instead of skipping) when a backend a conformance suite needs is unavailable",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "requires(feature): the test needs an optional feature of the flavor under test"
    )


def backend_unavailable(request: pytest.FixtureRequest, reason: str) -> None:
    """Skip the test for a missing backend, or fail under `--kitaru-require-backends`."""
    if request.config.getoption("--kitaru-require-backends", default=False):
        pytest.fail(f"backend required but unavailable: {reason}")
    pytest.skip(reason)
