"""Formula-safe CSV cells survive a round trip through a report and back into a job file."""

import pytest

from bulkops.cells import escape, unescape


@pytest.mark.parametrize(
    ("value", "written"),
    [
        ("=HYPERLINK(\"http://x\")", "'=HYPERLINK(\"http://x\")"),
        ("+1 Plumbing", "'+1 Plumbing"),
        ("-5 Deals", "'-5 Deals"),
        ("@acme", "'@acme"),
        ("\tTabbed", "'\tTabbed"),
        ("Acme Bakery", "Acme Bakery"),
        ("'quoted already", "'quoted already"),
        ("", ""),
    ],
)
def test_escape_marks_formula_starts_and_unescape_restores(value: str, written: str) -> None:
    assert escape(value) == written
    assert unescape(written) == value


def test_a_plain_leading_apostrophe_is_kept_when_read() -> None:
    assert unescape("'tis the season") == "'tis the season"
