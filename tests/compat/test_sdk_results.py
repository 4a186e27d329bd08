"""The compat harness's pure parts: JUnit XML -> classified results -> report and TSV, and
the clouds.yaml the SDK reads."""

from __future__ import annotations

import openstack.config
from run_sdk_functional import CLOUD_NAMES, clouds_yaml, sdk_environment
from sdk_results import (
    PACKAGE,
    Outcome,
    exit_status,
    report,
    results_from_junit,
    unexpected_failures,
    write_tsv,
)
from sdk_scope import Scope

TRACEBACK = """'NoneType' object is not iterable

During handling of the above exception, another exception occurred:
NOTE: Incompatible Exception Representation, displaying natively:

testtools.testresult.real._StringException: Traceback (most recent call last):
  File "test_port.py", line 40, in setUp
    self.AGENT = agents[0]
IndexError: list index out of range
"""

JUNIT = f"""<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest">
  <testcase classname="{PACKAGE}.test_port.TestPort" name="test_get" time="0.1"/>
  <testcase classname="{PACKAGE}.test_port.TestPort" name="test_list" time="0.1">
    <failure message="Failed: NOTE: Incompatible Exception Representation">{TRACEBACK}</failure>
  </testcase>
  <testcase classname="{PACKAGE}.test_router.TestRouter" name="test_update" time="0.1"/>
  <testcase classname="{PACKAGE}.test_router.TestRouter" name="test_update" time="0.1">
    <error message="error in teardown">RuntimeError: cleanup failed</error>
  </testcase>
  <testcase classname="{PACKAGE}.test_trunk.TestTrunk" name="test_list" time="0">
    <skipped type="pytest.skip" message="Network trunk extension disabled">x</skipped>
  </testcase>
  <testcase classname="{PACKAGE}.test_security_group.TestSecurityGroup" name="test_get">
    <failure message="m">NotFoundException: 404</failure>
  </testcase>
  <testcase classname="{PACKAGE}.test_subnet_pool.TestSubnetPool" name="test_get">
    <failure message="m">NotFoundException: 404</failure>
  </testcase>
</testsuite></testsuites>
"""


def test_results_are_classified_with_the_raised_exception_and_the_worst_outcome():
    results = {r.test_id: r for r in results_from_junit(JUNIT)}
    assert list(results) == sorted(results)
    assert {test_id: (r.outcome, r.scope) for test_id, r in results.items()} == {
        "test_port.TestPort.test_get": (Outcome.PASSED, Scope.IN_SCOPE),
        "test_port.TestPort.test_list": (Outcome.FAILED, Scope.IN_SCOPE),
        "test_router.TestRouter.test_update": (Outcome.ERROR, Scope.IN_SCOPE),
        "test_trunk.TestTrunk.test_list": (Outcome.SKIPPED, Scope.UNCLAIMED),
        "test_security_group.TestSecurityGroup.test_get": (Outcome.FAILED, Scope.IN_SCOPE),
        "test_subnet_pool.TestSubnetPool.test_get": (Outcome.FAILED, Scope.IN_SCOPE),
    }
    assert results["test_port.TestPort.test_list"].message == "IndexError: list index out of range"
    assert results["test_trunk.TestTrunk.test_list"].message == "Network trunk extension disabled"
    assert results["test_trunk.TestTrunk.test_list"].scope_reason == "trunks"
    assert results["test_port.TestPort.test_get"].message == ""


GAPS = {"test_subnet_pool": "subnet pools are being added on another branch"}


def test_report_counts_by_scope_and_separates_known_gaps():
    results = results_from_junit(JUNIT)
    assert [r.test_id for r in unexpected_failures(results, GAPS)] == [
        "test_port.TestPort.test_list", "test_router.TestRouter.test_update",
        "test_security_group.TestSecurityGroup.test_get"]
    text = report(results, GAPS)
    assert "  in-scope           1 passed, 4 failed, 0 skipped" in text
    assert "security-groups" not in text  # in scope since issue 13
    assert "  unclaimed-service  0 passed, 0 failed, 1 skipped" in text
    assert "  test_subnet_pool: 1 (subnet pools are being added on another branch)" in text
    assert "  test_port.TestPort.test_list: IndexError: list index out of range" in text
    assert "test_subnet_pool.TestSubnetPool.test_get:" not in text
    assert text.splitlines()[-1] == "in-scope: 1 passed, 4 failed, 0 skipped"


def test_exit_status_fails_on_unexpected_failures_only():
    results = results_from_junit(JUNIT)
    assert exit_status(results, GAPS) == 1
    unexpected = {r.test_id for r in unexpected_failures(results, GAPS)}
    assert exit_status([r for r in results if r.test_id not in unexpected], GAPS) == 0
    assert exit_status([]) == 1  # nothing ran
    assert exit_status(results, {}) == 1


def test_tsv_has_one_row_per_test(tmp_path):
    path = tmp_path / "results.tsv"
    write_tsv(results_from_junit(JUNIT), path)
    rows = [line.split("\t") for line in path.read_text().splitlines()]
    assert rows[0] == ["test", "outcome", "scope", "scope_reason", "message"]
    assert len(rows) == 7 and all(len(row) == 5 for row in rows)
    assert ["test_trunk.TestTrunk.test_list", "skipped", "unclaimed-service", "trunks",
            "Network trunk extension disabled"] in rows


def test_clouds_are_authless_with_only_a_network_endpoint(tmp_path):
    path = tmp_path / "clouds.yaml"
    path.write_text(clouds_yaml("http://127.0.0.1:9"))
    config = openstack.config.OpenStackConfig(config_files=[str(path)])
    for name in CLOUD_NAMES:
        region = config.get_one(cloud=name)
        assert region.config["auth_type"] == "none"
        assert region.get_endpoint("network") == "http://127.0.0.1:9"
        assert region.get_endpoint("compute") is None


def test_the_sdk_sees_only_our_clouds(tmp_path):
    inherited = {"PATH": "/usr/bin", "OS_AUTH_URL": "http://keystone", "OS_CLOUD": "prod",
                 "OPENSTACKSDK_DEMO_CLOUD": "x", "XDG_CONFIG_HOME": "/root/.config"}
    env = sdk_environment(inherited, tmp_path, tmp_path / "clouds.yaml")
    assert env == {"PATH": "/usr/bin", "HOME": str(tmp_path), "OS_CLOUD": "devstack-admin",
                   "OS_CLIENT_CONFIG_FILE": str(tmp_path / "clouds.yaml")}
