"""``authcore.__all__`` is exactly the public names, sorted, and each one is importable."""

from __future__ import annotations

import authcore


def test_all_is_sorted_and_unique() -> None:
    assert len(set(authcore.__all__)) == len(authcore.__all__)


def test_all_matches_the_public_names() -> None:
    public = {
        name
        for name, value in vars(authcore).items()
        if not name.startswith("_") and not getattr(value, "__name__", "").startswith("authcore.")
    }
    assert set(authcore.__all__) == public


def test_every_exported_name_resolves() -> None:
    for name in authcore.__all__:
        assert getattr(authcore, name) is not None
