"""Listing workspaces, on every backend (memory, SQLite, PostgreSQL; sync, async, cached).

PostgreSQL tests share one schema per session, so a listing there also holds other tests'
workspaces: these tests name their own with a random prefix and look at those, except those
of ``TestAlone``, which get a schema of their own.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator, Sequence

import pytest

from authcore.errors import ClientError
from authcore.records import MAX_LIST_PAGE, OPERATOR_ACTOR, WorkspacePage, WorkspaceRecord
from authcore.steps import Change, Insert, Steps

from .conftest import StoreUnderTest, fresh_pg_schema

NOW = 1_800_000_000


def _seed(records: Sequence[WorkspaceRecord]) -> Change[None]:
    # Workspaces with ids of our choosing: create_workspace always makes its own.
    def steps() -> Steps[None]:
        for record in records:
            yield Insert(record)

    return Change("seed", steps())


async def _walk(
    backend: StoreUnderTest, limit: int, after: str | None = None, prefix: str = ""
) -> list[str]:
    """Every workspace id from ``after`` on, page by page (stopping past ``prefix``'s)."""
    seen: list[str] = []
    while True:
        page: WorkspacePage = await backend.call("list_workspaces", limit=limit, after=after)
        assert len(page.workspaces) <= limit
        seen.extend(w.id for w in page.workspaces)
        if page.next_after is None or not page.next_after.startswith(prefix):
            return seen
        assert page.next_after == page.workspaces[-1].id
        after = page.next_after


async def test_pages_hold_every_workspace_once_in_id_order(backend: StoreUnderTest) -> None:
    made = [
        (await backend.call("create_workspace", f"w{i}", now=NOW, actor=OPERATOR_ACTOR)).id
        for i in range(7)
    ]
    seen = await _walk(backend, limit=3)
    assert seen == sorted(set(seen)), "ascending, no duplicates"
    assert set(made) <= set(seen), "no gaps"
    if backend.kind != "postgres":  # alone in its store
        assert seen == sorted(made)


async def test_ids_are_in_code_point_order(backend: StoreUnderTest) -> None:
    prefix = f"wsl_{secrets.token_hex(4)}_"
    ids = [prefix + suffix for suffix in ("b", "a", "é", "C", "c", "aa", "Z", "a-b")]
    await backend.call("run", _seed([WorkspaceRecord(i, "seeded", created_at=NOW) for i in ids]))
    seen = [i for i in await _walk(backend, 2, after=prefix, prefix=prefix) if i in ids]
    # Code-point order in every backend: a cursor means the same everywhere.
    assert seen == sorted(ids)


async def test_a_page_carries_the_whole_record(backend: StoreUnderTest) -> None:
    created = await backend.call(
        "create_workspace",
        "acme",
        org_id=f"org_{secrets.token_hex(4)}",
        now=NOW,
        actor=OPERATOR_ACTOR,
    )
    await backend.call("disable_workspace", created.id, now=NOW, actor=OPERATOR_ACTOR)
    before = created.id[:-1]  # sorts just before it
    page = await backend.call("list_workspaces", limit=1, after=before)
    assert page.workspaces == (await backend.call("find_workspace", created.id),)
    assert page.workspaces[0].disabled
    assert page.workspaces[0].org_id == created.org_id


class TestAlone:
    """Tests that need the store to themselves: on PostgreSQL, a schema of their own."""

    @pytest.fixture
    def pg_schema(self, postgres_url: str) -> Iterator[str]:
        yield from fresh_pg_schema(postgres_url)

    async def test_the_last_page_has_no_next(self, backend: StoreUnderTest) -> None:
        assert await backend.call("list_workspaces") == WorkspacePage((), None)
        ids = sorted(
            [
                (await backend.call("create_workspace", "w", now=NOW, actor=OPERATOR_ACTOR)).id
                for _ in range(4)
            ]
        )
        first = await backend.call("list_workspaces", limit=2)
        assert [w.id for w in first.workspaces] == ids[:2]
        assert first.next_after == ids[1]
        second = await backend.call("list_workspaces", limit=2, after=first.next_after)
        assert [w.id for w in second.workspaces] == ids[2:]
        assert second.next_after is None, "exactly a full page: no empty page after it"
        assert await backend.call("list_workspaces", after=ids[-1]) == WorkspacePage((), None)


@pytest.mark.parametrize("limit", [0, -1, MAX_LIST_PAGE + 1, True, "5", 2.0])
async def test_a_limit_out_of_bounds_is_refused(backend: StoreUnderTest, limit: object) -> None:
    with pytest.raises(ClientError):
        await backend.call("list_workspaces", limit=limit)


@pytest.mark.parametrize("after", ["", " ", "ws\x00", "ws\u202e", "x" * 201, 5])
async def test_an_unusable_after_is_refused(backend: StoreUnderTest, after: object) -> None:
    with pytest.raises(ClientError):
        await backend.call("list_workspaces", after=after)


async def test_listing_writes_no_audit_event(backend: StoreUnderTest) -> None:
    ws = await backend.call("create_workspace", "acme", now=NOW, actor=OPERATOR_ACTOR)
    before = await backend.call("list_audit", ws.id)
    await backend.call("list_workspaces", limit=MAX_LIST_PAGE)
    assert await backend.call("list_audit", ws.id) == before
