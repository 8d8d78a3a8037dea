"""Tests for authcore.permissions: grammar, permission sets, queries, parser and evaluator."""

from __future__ import annotations

import pickle

import pytest
from hypothesis import given
from hypothesis import strategies as st

from authcore import permissions as perms
from authcore.errors import InvalidPermissionError, PermissionDeniedError
from authcore.permissions import (
    MAX_GRANTS,
    MAX_QUERY_DEPTH,
    MAX_QUERY_LENGTH,
    MAX_QUERY_PERMISSIONS,
    AllOf,
    AnyOf,
    PermissionSet,
    Query,
    Require,
    as_query,
    check,
    evaluate,
    parse_query,
    validate_grant,
    validate_permission,
)
from tests.strategies import (
    grant_lists,
    grant_names,
    permission_names,
    permission_sets,
    queries,
    query_like_text,
)


def _deep_query(depth: int) -> Query:
    query: Query = Require("a")
    for _ in range(depth):
        query = AllOf((query, Require("b")))
    return query


# --------------------------------------------------------------------------- grammar


@pytest.mark.parametrize(
    "name",
    [
        "keys",
        "keys.create",
        "portal.create_session",
        "a1.b_2.c__",
        "a.b.c.d.e.f.g.h",
        "a" * 128,
        ".".join(["abcdefghijklmno"] * 8),
    ],
)
def test_validate_permission_accepts_valid_name(name: str) -> None:
    assert validate_permission(name) == name


@pytest.mark.parametrize(
    "name",
    [
        "",
        ".",
        "..",
        "keys.",
        ".keys",
        "keys..read",
        "*",
        "keys.*",
        "*.read",
        "keys.*x",
        "keys?",
        "keys.?",
        "keys.[ab]",
        "[",
        "Keys",
        "KEYS.read",
        "keys.Read",
        "\uff0a",
        "keys.\uff0a",
        "\uff4beys",
        "\u0130",
        "keys.\u0131",
        "\u0131",
        "1keys",
        "_keys",
        "keys.1a",
        "keys-read",
        "keys read",
        "keys/read",
        "keys\n",
        "keys.read\n",
        "a" * 129,
        "a.b.c.d.e.f.g.h.i",
    ],
)
def test_validate_permission_rejects_invalid_name(name: str) -> None:
    with pytest.raises(InvalidPermissionError):
        validate_permission(name)


@pytest.mark.parametrize("name", [None, 1, b"keys", ["keys"], ("keys",)])
def test_validate_permission_rejects_non_str(name: object) -> None:
    with pytest.raises(InvalidPermissionError, match="must be a str"):
        validate_permission(name)  # type: ignore[arg-type]  # the point is a wrong type


@pytest.mark.parametrize("name", ["*", "keys.*", "*.read", "*.*", "a.*.c", "keys.read"])
def test_validate_grant_accepts_valid_grant(name: str) -> None:
    assert validate_grant(name) == name


@pytest.mark.parametrize(
    "name",
    [
        "",
        ".",
        "keys.",
        ".*",
        "*.",
        "keys..*",
        "**",
        "keys.**",
        "keys.*x",
        "*x",
        "x*",
        "?",
        "keys.?",
        "[",
        "keys.[ab]",
        "\uff0a",
        "keys.\uff0a",
        "\u0130.*",
        "Keys.*",
        "*" + ".*" * 8,
        "a" * 129,
    ],
)
def test_validate_grant_rejects_invalid_grant(name: str) -> None:
    with pytest.raises(InvalidPermissionError):
        validate_grant(name)


def test_validate_grant_rejects_non_str() -> None:
    with pytest.raises(InvalidPermissionError, match="must be a str"):
        validate_grant(None)  # type: ignore[arg-type]  # the point is a wrong type


def test_rejection_detail_says_why() -> None:
    with pytest.raises(InvalidPermissionError, match="wildcard") as info:
        validate_permission("keys.*")
    assert info.value.detail is not None
    assert "keys.*" in info.value.detail


def test_rejection_detail_never_echoes_overlong_input() -> None:
    name = "secretish" * 20
    with pytest.raises(InvalidPermissionError) as info:
        validate_permission(name)
    assert info.value.detail is not None
    assert name not in info.value.detail
    assert name not in str(info.value)


def test_validate_permission_returns_exact_str_for_str_subclass() -> None:
    class Sneaky(str):
        __slots__ = ()

    result = validate_permission(Sneaky("keys.read"))
    assert type(result) is str
    assert result == "keys.read"


# --------------------------------------------------------------------------- PermissionSet


@given(permission_names)
def test_empty_set_allows_nothing(name: str) -> None:
    assert not PermissionSet().allows(name)


def test_exact_grant_allows_only_that_permission() -> None:
    granted = PermissionSet(["keys.read"])
    assert granted.allows("keys.read")
    assert not granted.allows("keys.create")
    assert not granted.allows("keys")
    assert not granted.allows("keys.read.all")


@given(permission_names)
def test_star_grant_allows_every_valid_permission(name: str) -> None:
    assert PermissionSet(["*"]).allows(name)


def test_segment_wildcard_matches_one_segment() -> None:
    assert PermissionSet(["keys.*"]).allows("keys.read")


def test_segment_wildcard_does_not_match_the_prefix_alone() -> None:
    assert not PermissionSet(["keys.*"]).allows("keys")


def test_segment_wildcard_does_not_match_two_segments() -> None:
    assert not PermissionSet(["keys.*"]).allows("keys.a.b")


def test_inner_wildcard_matches_only_its_segment() -> None:
    granted = PermissionSet(["a.*.c"])
    assert granted.allows("a.b.c")
    assert not granted.allows("a.b.d")
    assert not granted.allows("x.b.c")


def test_wildcard_walk_falls_back_to_star_branch() -> None:
    # "keys.read.x" fails down the literal "keys.read" branch and must still try "keys.*".
    granted = PermissionSet(["keys.read.y", "keys.*.x"])
    assert granted.allows("keys.read.x")
    assert not granted.allows("keys.read.z")


def test_leading_wildcard_matches_any_first_segment() -> None:
    granted = PermissionSet(["*.read"])
    assert granted.allows("keys.read")
    assert not granted.allows("keys.write")


@pytest.mark.parametrize(
    "required",
    ["*", "keys.*", "Keys.read", "keys..read", "", "a" * 129, None, 3, ["keys.read"]],
)
def test_allows_is_false_for_an_invalid_required_permission(required: object) -> None:
    granted = PermissionSet(["*", "keys.*", "keys.read"])
    assert not granted.allows(required)  # type: ignore[arg-type]  # wrong types are the point


@given(st.tuples(st.text(max_size=6), st.text(max_size=6)).map("*".join))
def test_user_data_with_star_cannot_become_a_permission(user: str) -> None:
    with pytest.raises(InvalidPermissionError):
        validate_permission(f"docs.{user}")


@given(st.text(max_size=12))
def test_user_data_name_matches_only_itself(user: str) -> None:
    granted = PermissionSet(["docs.secret", "docs.*.owner"])
    assert granted.allows(f"docs.{user}") == (user == "secret")


def test_required_wildcard_does_not_match_the_same_wildcard_grant() -> None:
    assert not PermissionSet(["docs.*"]).allows("docs.*")


def test_allows_accepts_str_subclass() -> None:
    class Name(str):
        __slots__ = ()

    assert PermissionSet(["keys.read"]).allows(Name("keys.read"))


def test_set_rejects_invalid_grant() -> None:
    with pytest.raises(InvalidPermissionError):
        PermissionSet(["keys.read", "keys.*x"])


def test_set_rejects_a_single_string() -> None:
    with pytest.raises(InvalidPermissionError, match="single string"):
        PermissionSet("keys.read")


def test_set_rejects_non_iterable() -> None:
    with pytest.raises(InvalidPermissionError, match="iterable"):
        PermissionSet(42)  # type: ignore[arg-type]  # the point is a wrong type


def test_set_accepts_the_maximum_number_of_grants() -> None:
    assert len(PermissionSet(f"g{i}" for i in range(MAX_GRANTS))) == MAX_GRANTS


def test_set_rejects_more_than_the_maximum_number_of_grants() -> None:
    with pytest.raises(InvalidPermissionError, match="grants"):
        PermissionSet(f"g{i}" for i in range(MAX_GRANTS + 1))


def test_set_bounds_an_endless_iterable() -> None:
    def endless() -> object:
        while True:
            yield "keys.read"

    with pytest.raises(InvalidPermissionError):
        PermissionSet(endless())  # type: ignore[arg-type]  # a generator of str


def test_set_collapses_duplicate_grants() -> None:
    assert len(PermissionSet(["a", "a", "b"])) == 2


def test_set_iterates_and_lists_sorted() -> None:
    granted = PermissionSet(["keys.read", "*", "a.b"])
    assert list(granted) == ["*", "a.b", "keys.read"]
    assert granted.to_list() == ["*", "a.b", "keys.read"]
    assert granted.grants == frozenset({"*", "a.b", "keys.read"})


def test_set_repr_shows_sorted_grants() -> None:
    assert repr(PermissionSet(["keys.read", "a"])) == "PermissionSet(['a', 'keys.read'])"


def test_sets_with_the_same_grants_are_equal_and_hash_alike() -> None:
    one, two = PermissionSet(["a", "b.*"]), PermissionSet(["b.*", "a", "a"])
    assert one == two
    assert hash(one) == hash(two)
    assert one != PermissionSet(["a"])


def test_set_is_not_equal_to_a_plain_frozenset() -> None:
    assert PermissionSet(["a"]) != frozenset({"a"})


def test_set_is_immutable() -> None:
    granted = PermissionSet(["a"])
    with pytest.raises(AttributeError):
        granted._grants = frozenset({"*"})
    with pytest.raises(AttributeError):
        del granted._grants


def test_set_survives_pickle() -> None:
    granted = PermissionSet(["a", "keys.*"])
    copy = pickle.loads(pickle.dumps(granted))  # noqa: S301 - our own bytes
    assert copy == granted
    assert copy.allows("keys.read")


# --------------------------------------------------------------------------- covers


@pytest.mark.parametrize(
    ("held", "wanted", "expected"),
    [
        (["*"], ["anything.at.all"], True),
        (["*"], ["*"], True),
        (["keys.*"], ["keys.read"], True),
        (["keys.*"], ["keys.*"], True),
        (["keys.read"], ["keys.*"], False),
        (["keys.read"], ["keys.read"], True),
        (["keys.*"], ["*"], False),
        (["*.*"], ["*"], False),
        (["keys.*"], ["keys"], False),
        (["keys.*"], ["keys.a.b"], False),
        (["*.read"], ["keys.read"], True),
        (["*.*"], ["keys.*"], True),
        (["keys.*"], ["*.*"], False),
        (["*.b.*"], ["a.b.*"], True),
        (["a.*.c"], ["a.*.d"], False),
        (["a.*", "b.c"], ["a.x", "b.c"], True),
        (["a.*"], ["a.x", "b.c"], False),
        ([], [], True),
        (["a"], [], True),
        ([], ["a"], False),
    ],
)
def test_covers(held: list[str], wanted: list[str], expected: bool) -> None:
    assert PermissionSet(held).covers(PermissionSet(wanted)) is expected


@given(permission_sets)
def test_a_set_covers_itself(granted: PermissionSet) -> None:
    assert granted.covers(granted)


@given(permission_sets, permission_sets, permission_names)
def test_covering_set_allows_whatever_the_covered_set_allows(
    held: PermissionSet, wanted: PermissionSet, name: str
) -> None:
    if held.covers(wanted) and wanted.allows(name):
        assert held.allows(name)


@given(permission_sets, grant_names)
def test_a_set_covers_any_grant_it_would_allow_when_exact(held: PermissionSet, grant: str) -> None:
    if "*" not in grant:
        assert held.covers(PermissionSet([grant])) == held.allows(grant)


# --------------------------------------------------------------------------- query values


def test_require_rejects_wildcard() -> None:
    with pytest.raises(InvalidPermissionError):
        Require("keys.*")


@pytest.mark.parametrize("node", [AllOf, AnyOf])
def test_compound_rejects_no_terms(node: type[AllOf | AnyOf]) -> None:
    with pytest.raises(InvalidPermissionError, match="two terms"):
        node(())


@pytest.mark.parametrize("node", [AllOf, AnyOf])
def test_compound_rejects_a_single_term(node: type[AllOf | AnyOf]) -> None:
    with pytest.raises(InvalidPermissionError, match="two terms"):
        node((Require("a"),))


@pytest.mark.parametrize("node", [AllOf, AnyOf])
def test_compound_rejects_a_non_query_term(node: type[AllOf | AnyOf]) -> None:
    with pytest.raises(InvalidPermissionError, match="every term"):
        node((Require("a"), "b"))  # type: ignore[arg-type]  # the point is a wrong type


def test_compound_rejects_a_string_of_terms() -> None:
    with pytest.raises(InvalidPermissionError, match="not a string"):
        AllOf("ab")  # type: ignore[arg-type]  # the point is a wrong type


def test_compound_rejects_non_iterable_terms() -> None:
    with pytest.raises(InvalidPermissionError, match="iterable"):
        AnyOf(7)  # type: ignore[arg-type]  # the point is a wrong type


def test_compound_accepts_a_list_of_terms() -> None:
    assert AllOf([Require("a"), Require("b")]) == AllOf((Require("a"), Require("b")))


def test_compound_rejects_too_many_permissions() -> None:
    terms = [Require(f"p{i}") for i in range(MAX_QUERY_PERMISSIONS + 1)]
    with pytest.raises(InvalidPermissionError, match="at most"):
        AnyOf(terms)


def test_compound_rejects_too_many_permissions_across_subtrees() -> None:
    half = AllOf([Require(f"p{i}") for i in range(MAX_QUERY_PERMISSIONS // 2 + 1)])
    with pytest.raises(InvalidPermissionError, match="at most"):
        AnyOf((half, half))


def test_compound_accepts_the_maximum_depth() -> None:
    assert isinstance(_deep_query(MAX_QUERY_DEPTH), AllOf)


def test_compound_rejects_more_than_the_maximum_depth() -> None:
    with pytest.raises(InvalidPermissionError, match="deep"):
        _deep_query(MAX_QUERY_DEPTH + 1)


def test_query_renders_canonical_text() -> None:
    query = AllOf((Require("keys.read"), AnyOf((Require("keys.create"), Require("keys.revoke")))))
    assert str(query) == "keys.read AND (keys.create OR keys.revoke)"


def test_query_renders_nested_and_with_parentheses() -> None:
    query = AnyOf((AllOf((Require("a"), Require("b"))), Require("c")))
    assert str(query) == "(a AND b) OR c"


# --------------------------------------------------------------------------- parser


def test_parse_single_permission() -> None:
    assert parse_query("keys.read") == Require("keys.read")


def test_parse_and_binds_tighter_than_or() -> None:
    assert parse_query("a OR b AND c") == AnyOf((Require("a"), AllOf((Require("b"), Require("c")))))


def test_parse_parentheses_override_precedence() -> None:
    assert parse_query("(a OR b) AND c") == AllOf(
        (AnyOf((Require("a"), Require("b"))), Require("c"))
    )


def test_parse_flattens_a_chain_into_one_node() -> None:
    assert parse_query("a AND b AND c") == AllOf((Require("a"), Require("b"), Require("c")))


def test_parse_ignores_redundant_parentheses() -> None:
    assert parse_query("((a))") == Require("a")


def test_parse_accepts_parentheses_without_spaces() -> None:
    assert parse_query("a AND(b OR c)") == parse_query("a AND ( b OR c )")


def test_parse_reads_the_design_example() -> None:
    query = parse_query("keys.read AND (keys.create OR keys.revoke)")
    assert str(query) == "keys.read AND (keys.create OR keys.revoke)"


def test_parse_treats_lowercase_keywords_as_names_and_rejects() -> None:
    with pytest.raises(InvalidPermissionError, match="unexpected 'and'"):
        parse_query("keys.read and keys.write")


def test_parse_accepts_lowercase_keyword_as_a_permission_name() -> None:
    assert parse_query("and OR or") == AnyOf((Require("and"), Require("or")))


@pytest.mark.parametrize(
    "text",
    [
        "",
        " ",
        "a AND",
        "AND a",
        "OR",
        "a OR OR b",
        "a AND OR b",
        "(a",
        "a)",
        ")(",
        "()",
        "a b",
        "a (b)",
        "a AND (b",
        "keys.*",
        "*",
        "a\tAND b",
        "a AND\nb",
        "a AND b\n",
        "a\u00a0AND b",
        "Keys.read",
        "a && b",
        "NOT a",
    ],
)
def test_parse_rejects_malformed_text(text: str) -> None:
    with pytest.raises(InvalidPermissionError):
        parse_query(text)


@pytest.mark.parametrize("text", [None, 1, b"a", ["a"]])
def test_parse_rejects_non_str(text: object) -> None:
    with pytest.raises(InvalidPermissionError, match="must be a str"):
        parse_query(text)  # type: ignore[arg-type]  # the point is a wrong type


def test_parse_accepts_the_maximum_length() -> None:
    text = "a" + " " * (MAX_QUERY_LENGTH - 2) + "b"
    with pytest.raises(InvalidPermissionError, match="unexpected 'b'"):
        parse_query(text)  # parsed (and rejected for grammar), not refused for length


def test_parse_rejects_text_over_the_maximum_length() -> None:
    with pytest.raises(InvalidPermissionError, match="characters"):
        parse_query("a" + " " * MAX_QUERY_LENGTH)


def test_parse_accepts_the_maximum_number_of_permissions() -> None:
    text = " OR ".join(f"p{i}" for i in range(MAX_QUERY_PERMISSIONS))
    assert isinstance(parse_query(text), AnyOf)


def test_parse_rejects_more_than_the_maximum_number_of_permissions() -> None:
    text = " OR ".join(f"p{i}" for i in range(MAX_QUERY_PERMISSIONS + 1))
    with pytest.raises(InvalidPermissionError, match="permissions"):
        parse_query(text)


def test_parse_accepts_the_maximum_nesting() -> None:
    text = "(" * MAX_QUERY_DEPTH + "a" + ")" * MAX_QUERY_DEPTH
    assert parse_query(text) == Require("a")


def test_parse_rejects_more_than_the_maximum_nesting() -> None:
    text = "(" * (MAX_QUERY_DEPTH + 1) + "a" + ")" * (MAX_QUERY_DEPTH + 1)
    with pytest.raises(InvalidPermissionError, match="deep"):
        parse_query(text)


def test_parse_rejects_deep_nesting_without_recursion_error() -> None:
    with pytest.raises(InvalidPermissionError):
        parse_query("(" * 1000)


def test_parse_rejects_a_tree_deeper_than_the_bound() -> None:
    # Parenthesis depth 16 is allowed, but each level adds an AND node: the tree is too deep.
    text = "a"
    for _ in range(MAX_QUERY_DEPTH):
        text = f"({text} AND b)"
    text = f"{text} AND c"
    with pytest.raises(InvalidPermissionError, match="deep"):
        parse_query(text)


def test_parse_caches_results() -> None:
    text = "cache.probe AND (x OR y)"
    assert parse_query(text) is parse_query(text)


def test_parse_caches_by_exact_str_for_str_subclass() -> None:
    class Text(str):
        __slots__ = ()

    assert parse_query(Text("a OR b")) == AnyOf((Require("a"), Require("b")))


@given(st.text(max_size=60))
def test_parse_of_arbitrary_text_returns_a_query_or_raises_our_error(text: str) -> None:
    try:
        result = parse_query(text)
    except InvalidPermissionError:
        return
    assert isinstance(result, Require | AllOf | AnyOf)


@given(query_like_text)
def test_parse_of_query_like_text_returns_a_query_or_raises_our_error(text: str) -> None:
    try:
        result = parse_query(text)
    except InvalidPermissionError:
        return
    assert isinstance(result, Require | AllOf | AnyOf)


@given(queries)
def test_str_then_parse_round_trips(query: Query) -> None:
    assert parse_query(str(query)) == query


def test_as_query_returns_a_query_unchanged() -> None:
    query = Require("a")
    assert as_query(query) is query


def test_as_query_parses_text() -> None:
    assert as_query("a AND b") == AllOf((Require("a"), Require("b")))


def test_as_query_rejects_other_types() -> None:
    with pytest.raises(InvalidPermissionError):
        as_query(3)  # type: ignore[arg-type]  # the point is a wrong type


# --------------------------------------------------------------------------- evaluator


@given(queries)
def test_empty_set_satisfies_no_query(query: Query) -> None:
    assert not PermissionSet().satisfies(query)


@given(queries)
def test_star_satisfies_every_query(query: Query) -> None:
    assert PermissionSet(["*"]).satisfies(query)


@given(grant_lists, grant_lists, queries)
def test_adding_grants_never_revokes(base: list[str], extra: list[str], query: Query) -> None:
    if PermissionSet(base).satisfies(query):
        assert PermissionSet(base + extra).satisfies(query)


@given(permission_sets, queries, queries)
def test_all_of_is_and(granted: PermissionSet, left: Query, right: Query) -> None:
    expected = granted.satisfies(left) and granted.satisfies(right)
    assert granted.satisfies(AllOf((left, right))) is expected


@given(permission_sets, queries, queries)
def test_any_of_is_or(granted: PermissionSet, left: Query, right: Query) -> None:
    expected = granted.satisfies(left) or granted.satisfies(right)
    assert granted.satisfies(AnyOf((left, right))) is expected


@given(permission_sets, queries, queries)
def test_all_of_commutes(granted: PermissionSet, left: Query, right: Query) -> None:
    assert granted.satisfies(AllOf((left, right))) is granted.satisfies(AllOf((right, left)))


@given(permission_sets, queries, queries)
def test_any_of_commutes(granted: PermissionSet, left: Query, right: Query) -> None:
    assert granted.satisfies(AnyOf((left, right))) is granted.satisfies(AnyOf((right, left)))


@given(permission_sets, queries)
def test_evaluate_matches_satisfies(granted: PermissionSet, query: Query) -> None:
    assert evaluate(granted, query) is granted.satisfies(query)


@given(permission_sets, permission_names)
def test_require_is_allows(granted: PermissionSet, name: str) -> None:
    assert granted.satisfies(Require(name)) is granted.allows(name)


def test_satisfies_parses_text() -> None:
    granted = PermissionSet(["keys.read", "keys.revoke"])
    assert granted.satisfies("keys.read AND (keys.create OR keys.revoke)")
    assert not granted.satisfies("keys.read AND keys.create")


def test_satisfies_raises_on_malformed_text() -> None:
    with pytest.raises(InvalidPermissionError):
        PermissionSet(["*"]).satisfies("keys.read AND")


def test_evaluate_denies_a_non_query() -> None:
    assert not evaluate(PermissionSet(["*"]), "keys.read")  # type: ignore[arg-type]  # deny


def test_check_passes_when_satisfied() -> None:
    check(PermissionSet(["keys.*"]), "keys.read OR admin")


def test_check_raises_permission_denied_when_not_satisfied() -> None:
    with pytest.raises(PermissionDeniedError, match=r"keys\.create"):
        check(PermissionSet(["keys.read"]), Require("keys.create"))


def test_all_is_sorted_and_exported() -> None:
    # isort-style order, as ruff's RUF022 keeps it: CONSTANTS, then Classes, then functions.
    def kind(name: str) -> tuple[int, str]:
        return (0 if name.isupper() else 1 if name[0].isupper() else 2, name)

    assert perms.__all__ == sorted(perms.__all__, key=kind)
    assert all(hasattr(perms, name) for name in perms.__all__)
