"""The conformance kit itself: it fails a broken flavor, and guards its standard tests."""

from __future__ import annotations

import pytest

BROKEN_PLUGIN = '''
from kitaru_core.plugins import Flavor, hookimpl
from kitaru_core.stores import FsspecArtifactStore, GenericFsspecStoreConfig


class ForgetfulStore(FsspecArtifactStore):
    """Drops every blob it is given: a store that must fail the suite."""

    def put_blob(self, data, key):
        return None


@hookimpl
def kitaru_register_flavors(registrar):
    registrar.add(Flavor(name="forgetful", type="artifact_store", config=GenericFsspecStoreConfig,
                         implementation="broken_plugin:ForgetfulStore"))
'''

SUITE = '''
import uuid
import pytest
from kitaru_core.testing import ArtifactStoreConformance

class TestForgetful(ArtifactStoreConformance):
    flavor = "forgetful"
    plugin_modules = ("broken_plugin",)

    @pytest.fixture
    def config(self):
        return {"path": f"memory://kit/{uuid.uuid4().hex}"}
'''


@pytest.fixture
def suite_dir(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makepyfile(broken_plugin=BROKEN_PLUGIN)
    pytester.makeconftest('pytest_plugins = ["kitaru_core.testing.plugin"]')
    pytester.syspathinsert()
    return pytester


def test_a_store_that_drops_blobs_fails_the_blob_tests(suite_dir: pytest.Pytester):
    suite_dir.makepyfile(test_suite=SUITE)
    recorder = suite_dir.inline_run("-q", "-p", "no:cacheprovider", "-k", "blob")
    failed = {r.nodeid.split("::")[-1].partition("[")[0] for r in recorder.listoutcomes()[2]}
    assert "test_get_blob_of_an_unknown_key_raises_artifact_not_found" not in failed
    assert {"test_an_empty_blob_round_trips", "test_putting_a_stored_blob_again_is_a_noop",
            "test_a_second_store_with_the_same_config_reads_the_blobs"} <= failed


def test_a_standard_test_overridden_without_xfail_is_reported(suite_dir: pytest.Pytester):
    suite_dir.makepyfile(test_suite=SUITE + '''
    def test_an_empty_blob_round_trips(self):
        pass
''')
    result = suite_dir.runpytest("-q", "-p", "no:cacheprovider", "-k", "dropped")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*overridden without @pytest.mark.xfail*test_an_empty_blob_round_trips*"])


def test_a_standard_test_marked_xfail_with_a_reason_is_accepted(suite_dir: pytest.Pytester):
    suite_dir.makepyfile(test_suite=SUITE + '''
    @pytest.mark.xfail(reason="this flavor forgets blobs", strict=True)
    def test_an_empty_blob_round_trips(self, store):
        ArtifactStoreConformance.test_an_empty_blob_round_trips(self, store)
''')
    result = suite_dir.runpytest("-q", "-p", "no:cacheprovider", "-k", "dropped or empty_blob")
    result.assert_outcomes(passed=1, xfailed=1)


def test_a_feature_the_caps_do_not_declare_is_skipped_with_its_name(suite_dir: pytest.Pytester):
    suite_dir.makepyfile(test_suite=SUITE)
    result = suite_dir.runpytest("-q", "-rs", "-p", "no:cacheprovider", "-k", "another_process")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*does not declare shared_between_processes*"])
