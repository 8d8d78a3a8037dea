"""Values on the command line: numbers are ASCII digits within bounds, rate limits one message."""

from __future__ import annotations

import argparse

import pytest

from authcore.cli.options import whole_number
from authcore.cli.program import _exit_code
from authcore.errors import ClientError, ConfigurationError, ConflictError, InvalidPermissionError
from tests.cli.runner import Run

HUGE = "99999999999999999999"


@pytest.mark.parametrize(
    "text", ["\u0661\u0660", "1_0", "+10", " 10", "10 ", "1e1", "0x10", "\u0661", ""]
)
def test_a_number_is_ascii_digits_only(run: Run, text: str) -> None:
    # Issue 26: int() takes every one of these (U+0661 U+0660 is Arabic-Indic "10"); the
    # example API takes none.
    line = run.fails("prune-usage", "--retention-days", text, code=2)
    assert "--retention-days" in line
    assert "ASCII digits" in line


@pytest.mark.parametrize(
    ("argv", "option"),
    [
        (["audit", "list", "--workspace", "ws_x", "--limit", "1000"], "--limit"),
        (["audit", "list", "--workspace", "ws_x", "--limit", "0"], "--limit"),
        (["keys", "create", "--workspace", "w", "--permission", "a", "--expires-in", HUGE],
         "--expires-in"),
        (["portal", "create-session", "--workspace", "w", "--identity", "c", "--permission", "a",
          "--ttl", HUGE], "--ttl"),
        (["portal", "create-session", "--workspace", "w", "--identity", "c", "--permission", "a",
          "--ttl", "2592001"], "--ttl"),
        (["jwt", "mint", "--workspace", "w", "--subject", "s", "--permission", "a",
          "--ttl", HUGE], "--ttl"),
        (["jwt", "check-rotation", "--switched-at", HUGE], "--switched-at"),
        (["usage", "--workspace", "w", "--since", HUGE], "--since"),
        (["prune-usage", "--retention-days", "367"], "--retention-days"),
        (["prune-usage", "--rollup-after-hours", HUGE], "--rollup-after-hours"),
        (["identities", "list", "--workspace", "w", "--limit", "501"], "--limit"),
        (["serve", "--workers", HUGE], "--workers"),
        (["serve", "--port", "65536"], "--port"),
    ],
)  # fmt: skip
def test_a_number_out_of_its_bounds_is_a_usage_error(
    run: Run, argv: list[str], option: str
) -> None:
    # Issue 26: these exited 1 (the store refused them) or were taken as they were.
    line = run.fails(*argv, code=2)
    assert option in line
    assert ".." in line  # the message states the bounds


def test_whole_number_reads_digits_and_states_its_bounds() -> None:
    parse = whole_number(1, 500)
    assert parse("1") == 1
    assert parse("0500") == 500
    for text in ("0", "501", "\u0665", "5_0", "-1", "9" * 5000):
        with pytest.raises(argparse.ArgumentTypeError, match=r"in 1\.\.500"):
            parse(text)


@pytest.mark.parametrize(
    "value", ["10000000/60", "2000000/60", "0/60", "5/0", "5/86401", "5/100000", "lots", "1_0/5"]
)
def test_every_bad_rate_limit_gets_the_one_message_with_both_bounds(run: Run, value: str) -> None:
    # Issue 26: 10000000/60 said "must look like N/SECONDS", 2000000/60 "limit must be in ...".
    line = run.fails("workspace", "create", "--name", "x", "--rate-limit", value, code=2)
    assert line.endswith(
        "argument --rate-limit: a rate limit is N/SECONDS: N in 1..1,000,000 requests per"
        f" SECONDS in 1..86,400 (a day); got {value!r}"
    )


def test_a_value_the_store_refuses_is_bad_input_and_a_conflict_is_not() -> None:
    assert _exit_code(ClientError("limit must be an int in 1..500")) == 2
    assert _exit_code(InvalidPermissionError("grammar")) == 2
    assert _exit_code(ConfigurationError("bad file")) == 2
    assert _exit_code(ConflictError("identity already exists")) == 1
