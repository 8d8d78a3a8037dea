"""The benchmark harness runs end to end in its tiny --smoke mode (no timing is asserted)."""

from __future__ import annotations

from pathlib import Path

import pytest
from benchmarks.harness import SMOKE, Row, Stat, compare, loop
from benchmarks.suite import main, run_benches


def test_compare_pairs_rounds_and_judges_against_the_target() -> None:
    row = compare(
        "unit",
        "sum of a small range",
        subject=loop(lambda: sum(range(50))),
        baseline=loop(lambda: sum(range(5))),
        baseline_what="smaller range",
        mode=SMOKE,
        target=1e9,
    )
    assert row.ratio is not None
    assert row.status == "PASS"
    assert Row(name="x", ratio=Stat(2.0, 2.0, 2.0), target=1.5).status == "MISS"
    assert Row(name="x", ratio=Stat(0.9, 0.9, 0.9), target=0.93, direction=">=").status == "MISS"


def test_rows_survive_the_dictionary_form() -> None:
    row = Row(name="r", what="w", ratio=Stat(1.1, 1.0, 1.2), target=1.2)
    again = Row.from_dict(row.to_dict())
    assert (again.name, again.ratio, again.target, again.status) == ("r", row.ratio, 1.2, "PASS")


@pytest.mark.e2e
def test_smoke_run_writes_every_row(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    output = tmp_path / "benchmarks.md"
    assert main(["--smoke", "--output", str(output)]) == 0
    text = output.read_text()
    printed = capsys.readouterr().out
    for name in ("core.pipeline", "jwt.cold", "jwt.kid10", "perm.exact", "perm.wildcard"):
        assert name in text
        assert name in printed
    assert "## Machine" in text
    assert "Python:" in text
    assert "bench failed" not in text


def test_only_selects_rows_by_prefix() -> None:
    rows = run_benches(SMOKE, ["perm."])
    assert [row.name for row in rows] == ["perm.exact", "perm.wildcard"]
