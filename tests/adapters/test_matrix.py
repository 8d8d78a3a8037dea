"""The behaviour matrix, run in process against the ASGI, WSGI, Flask and Django adapters."""

from __future__ import annotations

import pytest

from tests.adapters.drivers import SENDERS, run_case
from tests.adapters.world import CASES, Case, check, make_world


@pytest.mark.parametrize("adapter", sorted(SENDERS))
@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
async def test_case_answers_as_the_design_table_says(adapter: str, case: Case) -> None:
    world = make_world()
    async with SENDERS[adapter](world) as send:
        check(case, await run_case(send, world, case))


async def test_every_adapter_answers_every_case_identically() -> None:
    answers: dict[str, list[tuple[str, object]]] = {}
    for adapter, sender in SENDERS.items():
        world = make_world()
        async with sender(world) as send:
            answers[adapter] = [
                (case.name, (await run_case(send, world, case)).comparable()) for case in CASES
            ]
    assert set(answers) == {"asgi", "wsgi", "flask", "django", "django_asgi"}
    assert (
        answers["asgi"]
        == answers["wsgi"]
        == answers["flask"]
        == answers["django"]
        == answers["django_asgi"]
    )


@pytest.mark.parametrize("adapter", sorted(SENDERS))
async def test_unknown_revoked_and_expired_credentials_get_identical_answers(adapter: str) -> None:
    world = make_world()
    names = {"unknown_key", "revoked_key", "expired_key", "jwt_expired", "jwt_wrong_audience"}
    async with SENDERS[adapter](world) as send:
        answers = [await run_case(send, world, case) for case in CASES if case.name in names]
    assert len(answers) == len(names)
    assert len({(a.status, a.headers, a.body) for a in answers}) == 1


@pytest.mark.parametrize(
    ("style", "names"),
    [
        ("legacy", {"ratelimit-limit", "ratelimit-remaining", "ratelimit-reset"}),
        (
            "both",
            {
                "ratelimit-policy",
                "ratelimit",
                "ratelimit-limit",
                "ratelimit-remaining",
                "ratelimit-reset",
            },
        ),
        ("none", set()),
    ],
)
async def test_every_adapter_sends_the_styles_fields_identically(
    style: str, names: set[str]
) -> None:
    wanted = {"valid_key", "key_with_its_own_limit", "key_limit_reached"}
    answers: dict[str, list[object]] = {}
    for adapter, sender in SENDERS.items():
        world = make_world(style)
        async with sender(world) as send:
            answers[adapter] = []
            for case in CASES:
                if case.name in wanted:
                    answer = await run_case(send, world, case)
                    sent = {name for name, _ in answer.headers if name.startswith("ratelimit")}
                    assert sent == names, (adapter, case.name, answer.headers)
                    answers[adapter].append(answer.comparable())
    first = answers["asgi"]
    assert all(answer == first for answer in answers.values())
