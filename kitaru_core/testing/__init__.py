"""Conformance kits: reusable pytest suites every flavor (ours and third parties') passes.

A plugin's tests subclass a suite and say how to build its flavor::

    # conftest.py
    pytest_plugins = ["kitaru_core.testing.plugin"]

    # test_conformance.py
    from kitaru_core.testing import RegistryConformance

    class TestAcmeRegistry(RegistryConformance):
        flavor = "acme"

        @pytest.fixture
        def config(self, acme_database_url):
            return {"url": acme_database_url}

Suite classes have no `Test` prefix, so pytest collects them only in subclasses.
Only this package imports pytest; `import kitaru` never imports it.
"""

from __future__ import annotations

import pytest

pytest.register_assert_rewrite("kitaru_core.testing.suites", "kitaru_core.testing.base")

from .base import ComponentConformance, build_component  # noqa: E402
from .suites.registry import RegistryConformance  # noqa: E402

SUITE_VERSION = 2  # 2: inputs commit with their execution; housekeeping

__all__ = ["SUITE_VERSION", "ComponentConformance", "RegistryConformance", "build_component"]
