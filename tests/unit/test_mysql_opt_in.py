"""The MySQL tests touch a server only when asked to: they create and drop databases and users."""

from __future__ import annotations

from tests.conftest import CI_MYSQL_URL, mysql_test_url

NAMED = "mysql+asyncmy://tester:pw@db.test:3307/scratch"


def test_without_the_url_or_ci_no_server_is_used() -> None:
    assert mysql_test_url({}) is None
    assert mysql_test_url({"CHARGED_TEST_MYSQL_URL": "  "}) is None
    assert mysql_test_url({"CI": "false"}) is None


def test_the_named_server_is_used_in_and_out_of_ci() -> None:
    assert mysql_test_url({"CHARGED_TEST_MYSQL_URL": NAMED}) == NAMED
    assert mysql_test_url({"CHARGED_TEST_MYSQL_URL": NAMED, "CI": "true"}) == NAMED


def test_ci_without_a_url_uses_the_local_server_it_starts() -> None:
    assert mysql_test_url({"CI": "true"}) == CI_MYSQL_URL
