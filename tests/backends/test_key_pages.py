"""Pages of keys on every backend (memory, SQLite, PostgreSQL; sync, async, cached): one order,
oldest first by ``(created_at, id)``, paged in the store, never a key twice or left out."""

from __future__ import annotations

from typing import Any

import pytest

from authcore.errors import ClientError
from authcore.records import MAX_LIST_PAGE, OPERATOR_ACTOR, KeyCursor, KeyPage, WorkspaceRecord

from .conftest import StoreUnderTest

NOW = 1_800_000_000
ACTOR = OPERATOR_ACTOR


async def _workspace(backend: StoreUnderTest) -> WorkspaceRecord:
    record: WorkspaceRecord = await backend.call("create_workspace", "Acme", now=NOW, actor=ACTOR)
    return record


async def _keys(backend: StoreUnderTest, ws: WorkspaceRecord, **options: Any) -> list[str]:
    """Make a key at each of three times, three at the same time, two of an identity."""
    made = []
    for n, when in enumerate([NOW, NOW, NOW, NOW + 1, NOW + 2, NOW + 2]):
        identity = "cust" if n in {1, 4} else None
        created = await backend.call(
            "create_root_key", ws.id, permissions=["orders.read"], identity=identity,
            now=when, actor=ACTOR, **options,
        )  # fmt: skip
        made.append(created.record.id)
    return made


async def _all_pages(backend: StoreUnderTest, ws_id: str, **options: Any) -> list[list[str]]:
    pages, after = [], None
    while True:
        page: KeyPage = await backend.call("list_root_keys_page", ws_id, after=after, **options)
        pages.append([key.id for key in page.keys])
        if page.next_cursor is None:
            return pages
        after = page.next_cursor


async def test_pages_follow_created_at_then_id_and_end_with_no_cursor(
    backend: StoreUnderTest,
) -> None:
    ws = await _workspace(backend)
    await _keys(backend, ws)
    everything = await backend.call("list_root_keys", ws.id)
    # The same order on every backend: ids by code point where created_at ties.
    assert [k.id for k in everything] == [
        k.id for k in sorted(everything, key=lambda k: (k.created_at, k.id))
    ]
    pages = await _all_pages(backend, ws.id, limit=2)
    assert pages == [[k.id for k in everything[i : i + 2]] for i in range(0, 6, 2)]
    one = await backend.call("list_root_keys_page", ws.id, limit=6)
    assert [k.id for k in one.keys] == [k.id for k in everything]
    assert one.next_cursor is None


async def test_a_page_of_one_identitys_keys(backend: StoreUnderTest) -> None:
    ws = await _workspace(backend)
    made = await _keys(backend, ws)
    owner = await backend.call("get_identity", ws.id, "cust")
    pages = await _all_pages(backend, ws.id, identity_id=owner.id, limit=1)
    assert pages == [[made[1]], [made[4]]]


async def test_a_key_made_while_paging_is_shown_once_at_the_end(
    backend: StoreUnderTest,
) -> None:
    ws = await _workspace(backend)
    await _keys(backend, ws)
    first: KeyPage = await backend.call("list_root_keys_page", ws.id, limit=3)
    late = await backend.call("create_root_key", ws.id, permissions=[], now=NOW + 5, actor=ACTOR)
    page: KeyPage = await backend.call("list_root_keys_page", ws.id, after=first.next_cursor)
    rest = [k.id for k in page.keys]
    shown = [k.id for k in first.keys] + rest
    assert len(shown) == len(set(shown)) == 7
    assert shown[-1] == late.record.id


async def test_a_cursor_past_the_end_gives_an_empty_last_page(backend: StoreUnderTest) -> None:
    ws = await _workspace(backend)
    await _keys(backend, ws)
    page = await backend.call("list_root_keys_page", ws.id, after=KeyCursor(NOW + 3, "key_0"))
    assert page == KeyPage((), None)


@pytest.mark.parametrize("limit", [0, MAX_LIST_PAGE + 1, True, "5"])
async def test_a_page_size_out_of_bounds_is_a_client_error(
    backend: StoreUnderTest, limit: object
) -> None:
    with pytest.raises(ClientError):
        await backend.call("list_root_keys_page", "ws_x", limit=limit)


async def test_a_cursor_of_another_type_is_a_client_error(backend: StoreUnderTest) -> None:
    with pytest.raises(ClientError):
        await backend.call("list_root_keys_page", "ws_x", after="k1:1.key_0")
