"""Permission names, grants, permission sets and permission queries.

Grammar::

    segment     := [a-z][a-z0-9_]*                  ASCII only
    permission  := segment ("." segment)*           at most 8 segments, 128 characters
    grant       := "*" | gsegment ("." gsegment)*   same bounds
    gsegment    := segment | "*"

A *required* permission (what an operation needs) never contains a wildcard. A *grant* (what a
principal holds) may use ``*`` as a whole segment, matching exactly one segment: ``keys.*``
matches ``keys.read`` but neither ``keys`` nor ``keys.a.b``. The grant ``*`` alone matches every
permission. ``keys.*x``, ``?``, ``[``, empty segments and leading or trailing dots are rejected.
Grants are validated when they are created. To build a permission from user data (a document
id, a project name), use :func:`permission_from_parts`: each part must be one literal segment,
so a user value of ``*`` or ``a.b`` is refused instead of widening or reshaping the grant.

Queries combine required permissions::

    expr    := term ("OR" term)*
    term    := factor ("AND" factor)*
    factor  := permission | "(" expr ")"

``AND`` binds tighter than ``OR``. Keywords are uppercase only: ``and`` and ``or`` are valid
permission names, so ``keys.read and keys.write`` is rejected instead of being misread. Tokens
are separated by ASCII spaces only. A query holds at most 64 permissions and nests at most 16
deep; query text is at most 1024 characters. :class:`AllOf` and :class:`AnyOf` need at least two
terms, so ``str(query)`` always parses back to an equal query. Authorization denies by default.

Everything here is pure: no I/O, no clock, no mutable state but a parse cache of immutable values.
"""

from __future__ import annotations

import functools
import itertools
import re
from collections.abc import Callable, Iterable, Iterator
from typing import Final, NoReturn, TypeAlias

import attrs

from authcore.errors import InvalidPermissionError, PermissionDeniedError

__all__ = [
    "MAX_GRANTS",
    "MAX_PERMISSION_LENGTH",
    "MAX_PERMISSION_SEGMENTS",
    "MAX_QUERY_DEPTH",
    "MAX_QUERY_LENGTH",
    "MAX_QUERY_PERMISSIONS",
    "AllOf",
    "AnyOf",
    "PermissionSet",
    "Query",
    "Require",
    "as_query",
    "check",
    "evaluate",
    "parse_query",
    "permission_from_parts",
    "validate_grant",
    "validate_permission",
]

MAX_PERMISSION_LENGTH: Final = 128
MAX_PERMISSION_SEGMENTS: Final = 8
MAX_GRANTS: Final = 4096
MAX_QUERY_LENGTH: Final = 1024
MAX_QUERY_PERMISSIONS: Final = 64
MAX_QUERY_DEPTH: Final = 16

_WILDCARD: Final = "*"

_SEGMENT = r"[a-z][a-z0-9_]*"
_GRANT_SEGMENT = rf"(?:{_SEGMENT}|\*)"
# Segments are separated by a dot that no segment contains, so neither pattern backtracks.
_PERMISSION_RE = re.compile(rf"{_SEGMENT}(?:\.{_SEGMENT}){{0,{MAX_PERMISSION_SEGMENTS - 1}}}")
_GRANT_RE = re.compile(
    rf"{_GRANT_SEGMENT}(?:\.{_GRANT_SEGMENT}){{0,{MAX_PERMISSION_SEGMENTS - 1}}}"
)
_SEGMENT_RE = re.compile(_SEGMENT)


# --------------------------------------------------------------------------- names and grants


def _plain(name: object, kind: str) -> str:
    """Return ``name`` as an exact ``str`` within the length bound.

    Raises:
        InvalidPermissionError: not a string, or longer than the bound.
    """
    if not isinstance(name, str):
        raise InvalidPermissionError(f"{kind} must be a str, not {type(name).__name__}")
    if type(name) is not str:
        # A str subclass could override __eq__/__hash__ and defeat the set lookups.
        name = str.__str__(name)
    if len(name) > MAX_PERMISSION_LENGTH:
        # Never echo over-long input, not even in a developer-only detail.
        raise InvalidPermissionError(f"{kind} is longer than {MAX_PERMISSION_LENGTH} characters")
    return name


def _reject(name: str, kind: str, *, wildcards: bool) -> NoReturn:
    """Raise an error saying why ``name`` (already length-checked) breaks the grammar.

    Raises:
        InvalidPermissionError: always.
    """
    if not name.isascii():
        raise InvalidPermissionError(f"{kind} {name!r} contains a non-ASCII character")
    segments = name.split(".")
    if len(segments) > MAX_PERMISSION_SEGMENTS:
        raise InvalidPermissionError(
            f"{kind} {name!r} has more than {MAX_PERMISSION_SEGMENTS} segments"
        )
    for segment in segments:
        if not segment:
            raise InvalidPermissionError(f"{kind} {name!r} has an empty segment")
        if segment == _WILDCARD and not wildcards:
            raise InvalidPermissionError(f"{kind} {name!r} contains a wildcard")
        if segment != _WILDCARD and not _SEGMENT_RE.fullmatch(segment):
            raise InvalidPermissionError(
                f"{kind} {name!r}: segment {segment!r} is not [a-z][a-z0-9_]* or a whole '*'"
            )
    raise InvalidPermissionError(f"{kind} {name!r} is invalid")  # pragma: no cover - defensive


def validate_permission(name: str) -> str:
    """Return ``name`` if it is a valid required permission (no wildcards).

    Raises:
        InvalidPermissionError: ``name`` is not a str or breaks the grammar.
    """
    name = _plain(name, "permission")
    # isascii first: it is cheap and rules out look-alikes (Turkish dotted I, full-width '*').
    if name.isascii() and _PERMISSION_RE.fullmatch(name):
        return name
    _reject(name, "permission", wildcards=False)


def validate_grant(name: str) -> str:
    """Return ``name`` if it is a valid grant (``*`` allowed as a whole segment).

    Raises:
        InvalidPermissionError: ``name`` is not a str or breaks the grammar.
    """
    name = _plain(name, "grant")
    if name.isascii() and _GRANT_RE.fullmatch(name):
        return name
    _reject(name, "grant", wildcards=True)


def permission_from_parts(*parts: str) -> str:
    """Join literal segments into a permission, refusing anything but one segment per part.

    ``permission_from_parts("docs", user_value, "read")`` is the safe way to put user data in
    a permission name: ``"*"`` (a wildcard), ``"a.b"`` (two segments), ``""``, ``"?"`` and
    non-ASCII look-alikes are all refused, so the result never matches more than it names.

    Raises:
        InvalidPermissionError: a part is not exactly one ``[a-z][a-z0-9_]*`` segment, or the
            joined name breaks the bounds.
    """
    if not parts:
        raise InvalidPermissionError("a permission needs at least one segment")
    for part in parts:
        if not isinstance(part, str) or not part.isascii() or not _SEGMENT_RE.fullmatch(part):
            raise InvalidPermissionError("each part must be one [a-z][a-z0-9_]* segment")
    return validate_permission(".".join(parts))


def _is_permission(name: object) -> bool:
    """Tell whether ``name`` is a valid required permission, without raising."""
    return (
        isinstance(name, str)
        and len(name) <= MAX_PERMISSION_LENGTH
        and name.isascii()
        and _PERMISSION_RE.fullmatch(name) is not None
    )


# --------------------------------------------------------------------------- permission sets

# One trie per segment count: a path of literal segments and "*" keys from the root to depth n
# is a grant of n segments. Built once, never mutated after PermissionSet.__init__.
_Trie: TypeAlias = dict[str, "_Trie"]


def _walk(node: _Trie, segments: list[str], index: int) -> bool:
    """Tell whether some grant in the trie below ``node`` matches ``segments[index:]``.

    A literal segment follows its own branch and the ``*`` branch; a ``*`` segment (only ever
    seen when checking that a wildcard grant is covered) follows the ``*`` branch alone.
    """
    if index == len(segments):
        return True
    segment = segments[index]
    child = node.get(segment)
    if child is not None and _walk(child, segments, index + 1):
        return True
    if segment == _WILDCARD:
        return False
    star = node.get(_WILDCARD)
    return star is not None and _walk(star, segments, index + 1)


class PermissionSet:
    """An immutable, hashable set of grants, compiled for constant-cost checks.

    Exact grants live in a frozenset; wildcard grants in one trie per segment count, so the
    cost of :meth:`allows` does not grow with the number of grants.
    """

    __slots__ = ("_exact", "_grants", "_match_all", "_tries")

    _exact: frozenset[str]
    _grants: frozenset[str]
    _match_all: bool
    _tries: dict[int, _Trie]

    def __init__(self, grants: Iterable[str] = ()) -> None:
        """Validate and compile ``grants``.

        Raises:
            InvalidPermissionError: a grant breaks the grammar, ``grants`` is a single string
                or not iterable, or there are more than ``MAX_GRANTS`` grants.
        """
        if isinstance(grants, str | bytes):
            # Iterating "keys.read" would grant "k", "e", "y", ...
            raise InvalidPermissionError("grants must be an iterable of str, not a single string")
        try:
            bounded = list(itertools.islice(grants, MAX_GRANTS + 1))
        except TypeError:
            raise InvalidPermissionError("grants must be an iterable of str") from None
        if len(bounded) > MAX_GRANTS:
            raise InvalidPermissionError(f"more than {MAX_GRANTS} grants")
        validated = frozenset(validate_grant(grant) for grant in bounded)
        tries: dict[int, _Trie] = {}
        for grant in validated:
            if grant == _WILDCARD or _WILDCARD not in grant:
                continue
            segments = grant.split(".")
            node = tries.setdefault(len(segments), {})
            for segment in segments:
                node = node.setdefault(segment, {})
        object.__setattr__(self, "_grants", validated)
        object.__setattr__(self, "_exact", frozenset(g for g in validated if _WILDCARD not in g))
        object.__setattr__(self, "_match_all", _WILDCARD in validated)
        object.__setattr__(self, "_tries", tries)

    @property
    def grants(self) -> frozenset[str]:
        """The validated grants."""
        return self._grants

    def allows(self, permission: str) -> bool:
        """Tell whether a grant matches the required ``permission``; deny by default.

        An invalid required permission (including any wildcard) is never allowed.
        """
        if not _is_permission(permission):
            return False
        if type(permission) is not str:
            permission = str.__str__(permission)
        if self._match_all or permission in self._exact:
            return True
        if not self._tries:
            return False
        segments = permission.split(".")
        root = self._tries.get(len(segments))
        return root is not None and _walk(root, segments, 0)

    @classmethod
    def compiled(cls, grants: tuple[str, ...]) -> PermissionSet:
        """Return the set for ``grants``, compiled once and shared by equal grant tuples.

        The verification hot path builds a principal per request from a stored grant tuple;
        sets are immutable, so one compiled set can serve every request holding those grants
        (sets of up to 32 grants: a bigger one is compiled afresh, so the memo stays small).

        Raises:
            InvalidPermissionError: as the constructor.
        """
        return _compiled(grants) if len(grants) <= _MEMO_MAX_GRANTS else cls(grants)

    def satisfies(self, query: Query | str) -> bool:
        """Tell whether these grants satisfy ``query`` (text is parsed with :func:`parse_query`).

        Raises:
            InvalidPermissionError: ``query`` is text that does not parse.
        """
        # Fast path: text naming an exact grant is a one-permission query that holds (exact
        # grants are validated permissions, so the text would parse to exactly that).
        if type(query) is str and query in self._exact:
            return True
        return evaluate(self, as_query(query))

    def covers(self, other: PermissionSet) -> bool:
        """Tell whether every grant of ``other`` is implied by a grant of this set.

        Used so a caller cannot hand out (mint a key with) a permission it does not hold. One
        grant of ``other`` is covered by the union of this set exactly when a single grant of this
        set covers it, since a segment alphabet is infinite.
        """
        if self._match_all:
            return True
        return all(self._covers_grant(grant) for grant in other._grants)

    def _covers_grant(self, grant: str) -> bool:
        if grant in self._exact:
            return True
        if grant == _WILDCARD:
            return False  # only "*" itself covers "*", and this set does not hold it
        segments = grant.split(".")
        root = self._tries.get(len(segments))
        return root is not None and _walk(root, segments, 0)

    def to_list(self) -> list[str]:
        """Return the grants, sorted."""
        return sorted(self._grants)

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._grants))

    def __len__(self) -> int:
        return len(self._grants)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PermissionSet):
            return NotImplemented
        return self._grants == other._grants

    def __hash__(self) -> int:
        return hash(self._grants)

    def __repr__(self) -> str:
        return f"PermissionSet({self.to_list()!r})"

    def __setattr__(self, name: str, value: object) -> NoReturn:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __delattr__(self, name: str) -> NoReturn:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __reduce__(self) -> tuple[type[PermissionSet], tuple[list[str]]]:
        return (PermissionSet, (self.to_list(),))


# --------------------------------------------------------------------------- queries


# The memo is bounded by entries (4,096), so only small sets enter it: a longer grant tuple is
# compiled afresh (issue 26, finding 3: the memory one tenant can pin follows its grants).
_MEMO_MAX_GRANTS: Final = 32


@functools.lru_cache(maxsize=4096)
def _compiled(grants: tuple[str, ...]) -> PermissionSet:
    return PermissionSet(grants)


def _validate_require(_instance: object, _attribute: object, value: str) -> None:
    validate_permission(value)


def _to_terms(value: Iterable[Query]) -> tuple[Query, ...]:
    """Convert ``value`` to a bounded tuple of terms (at most one more than the bound).

    Raises:
        InvalidPermissionError: ``value`` is a string or not iterable.
    """
    candidate: object = value  # typed as object: callers may pass anything at run time
    if isinstance(candidate, tuple):
        return candidate
    if isinstance(candidate, str | bytes):
        raise InvalidPermissionError("terms must be queries, not a string")
    try:
        return tuple(itertools.islice(value, MAX_QUERY_PERMISSIONS + 1))
    except TypeError:
        raise InvalidPermissionError("terms must be an iterable of queries") from None


def _shape(query: Query) -> tuple[int, int]:
    """Return ``(permissions, depth)`` of an already validated query; a Require has depth 0."""
    if isinstance(query, Require):
        return 1, 0
    count, depth = 0, 0
    for term in query.terms:
        term_count, term_depth = _shape(term)
        count += term_count
        depth = max(depth, term_depth)
    return count, depth + 1


def _validate_terms(_instance: object, _attribute: object, terms: tuple[Query, ...]) -> None:
    # Children are validated first, so each is bounded and this walk cannot recurse deeply.
    if len(terms) < 2:
        raise InvalidPermissionError("AllOf and AnyOf need at least two terms")
    if not all(isinstance(term, Require | AllOf | AnyOf) for term in terms):
        raise InvalidPermissionError("every term must be a Require, AllOf or AnyOf")
    count, depth = 0, 0
    for term in terms:
        term_count, term_depth = _shape(term)
        count += term_count
        depth = max(depth, term_depth + 1)
        if count > MAX_QUERY_PERMISSIONS:
            raise InvalidPermissionError(
                f"a query holds at most {MAX_QUERY_PERMISSIONS} permissions"
            )
    if depth > MAX_QUERY_DEPTH:
        raise InvalidPermissionError(f"a query nests at most {MAX_QUERY_DEPTH} deep")


def _render(term: Query) -> str:
    # Every compound term is parenthesized, so the text parses back to exactly this tree.
    return str(term) if isinstance(term, Require) else f"({term})"


@attrs.frozen
class Require:
    """Require one permission (never a wildcard).

    Raises:
        InvalidPermissionError: ``permission`` breaks the grammar.
    """

    permission: str = attrs.field(validator=_validate_require)

    def __str__(self) -> str:
        return self.permission


@attrs.frozen
class AllOf:
    """Require every term (at least two).

    Raises:
        InvalidPermissionError: fewer than two terms, a term is not a query, or the tree is over
            ``MAX_QUERY_PERMISSIONS`` permissions or ``MAX_QUERY_DEPTH`` deep.
    """

    terms: tuple[Query, ...] = attrs.field(converter=_to_terms, validator=_validate_terms)

    def __str__(self) -> str:
        return " AND ".join(_render(term) for term in self.terms)


@attrs.frozen
class AnyOf:
    """Require at least one term (at least two terms).

    Raises:
        InvalidPermissionError: fewer than two terms, a term is not a query, or the tree is over
            ``MAX_QUERY_PERMISSIONS`` permissions or ``MAX_QUERY_DEPTH`` deep.
    """

    terms: tuple[Query, ...] = attrs.field(converter=_to_terms, validator=_validate_terms)

    def __str__(self) -> str:
        return " OR ".join(_render(term) for term in self.terms)


Query: TypeAlias = Require | AllOf | AnyOf

# The evaluator's rule table: how each compound node combines its terms' results.
_COMBINE: Final[dict[type[AllOf | AnyOf], Callable[[Iterable[bool]], bool]]] = {
    AllOf: all,
    AnyOf: any,
}


def evaluate(permissions: PermissionSet, query: Query) -> bool:
    """Tell whether ``permissions`` satisfy ``query``; the same as ``permissions.satisfies``."""
    # Invariants: deny by default - only a Require the set allows is ever True, and anything
    # that is not a query is False. AllOf/AnyOf hold at least two terms (checked at
    # construction), so all()/any() never see an empty, vacuously true, input. Depth is bounded
    # at construction, so the recursion is too.
    if isinstance(query, Require):
        return permissions.allows(query.permission)
    combine = _COMBINE.get(type(query))
    if combine is None:
        return False
    return combine(evaluate(permissions, term) for term in query.terms)


def check(permissions: PermissionSet, query: Query | str) -> None:
    """Return only if ``permissions`` satisfy ``query``: the fail-closed form of evaluate.

    Raises:
        PermissionDeniedError: the query is not satisfied.
        InvalidPermissionError: ``query`` is text that does not parse.
    """
    parsed = as_query(query)
    if not evaluate(permissions, parsed):
        raise PermissionDeniedError(f"requires {parsed}")


# --------------------------------------------------------------------------- query parser


def _tokenize(text: str) -> list[str]:
    """Split query text into ``(``, ``)``, keywords and permission words.

    Raises:
        InvalidPermissionError: over the permission or nesting bounds, or unbalanced ``)``.
    """
    tokens = [t for t in text.replace("(", " ( ").replace(")", " ) ").split(" ") if t]
    depth = 0
    permissions = 0
    for word in tokens:
        if word == "(":
            depth += 1
            if depth > MAX_QUERY_DEPTH:
                raise InvalidPermissionError(f"a query nests at most {MAX_QUERY_DEPTH} deep")
        elif word == ")":
            depth -= 1
            if depth < 0:
                raise InvalidPermissionError("unbalanced ')' in query")
        elif word not in ("AND", "OR"):
            permissions += 1
            if permissions > MAX_QUERY_PERMISSIONS:
                raise InvalidPermissionError(
                    f"a query holds at most {MAX_QUERY_PERMISSIONS} permissions"
                )
    return tokens


def _parse_expr(tokens: list[str], pos: int) -> tuple[Query, int]:
    terms: list[Query] = []
    term, pos = _parse_term(tokens, pos)
    terms.append(term)
    while pos < len(tokens) and tokens[pos] == "OR":
        term, pos = _parse_term(tokens, pos + 1)
        terms.append(term)
    return (terms[0] if len(terms) == 1 else AnyOf(tuple(terms))), pos


def _parse_term(tokens: list[str], pos: int) -> tuple[Query, int]:
    factors: list[Query] = []
    factor, pos = _parse_factor(tokens, pos)
    factors.append(factor)
    while pos < len(tokens) and tokens[pos] == "AND":
        factor, pos = _parse_factor(tokens, pos + 1)
        factors.append(factor)
    return (factors[0] if len(factors) == 1 else AllOf(tuple(factors))), pos


def _parse_factor(tokens: list[str], pos: int) -> tuple[Query, int]:
    if pos >= len(tokens):
        raise InvalidPermissionError("query ends where a permission or '(' was expected")
    word = tokens[pos]
    if word == "(":
        inner, pos = _parse_expr(tokens, pos + 1)
        if pos >= len(tokens) or tokens[pos] != ")":
            raise InvalidPermissionError("missing ')' in query")
        return inner, pos + 1
    if word in (")", "AND", "OR"):
        raise InvalidPermissionError(f"unexpected {word!r} in query")
    return Require(word), pos + 1


@functools.lru_cache(maxsize=1024)
def _parse_query_cached(text: str) -> Query:
    tokens = _tokenize(text)
    query, pos = _parse_expr(tokens, 0)
    if pos != len(tokens):
        raise InvalidPermissionError(f"unexpected {tokens[pos]!r} in query")
    return query


def parse_query(text: str) -> Query:
    """Parse query text such as ``keys.read AND (keys.create OR keys.revoke)``.

    Results are cached (1024 entries, immutable values), so a handler passing the same string
    parses it once.

    Raises:
        InvalidPermissionError: ``text`` is not a str, is over the bounds, or is malformed.
    """
    if not isinstance(text, str):
        raise InvalidPermissionError(f"a query must be a str, not {type(text).__name__}")
    if len(text) > MAX_QUERY_LENGTH:
        raise InvalidPermissionError(f"a query is at most {MAX_QUERY_LENGTH} characters")
    # The cache is keyed by an exact str, so a subclass cannot poison it through __eq__/__hash__.
    return _parse_query_cached(str.__str__(text))


def as_query(query: Query | str) -> Query:
    """Return ``query`` itself, or parse it if it is text.

    Raises:
        InvalidPermissionError: text that does not parse, or neither a query nor a str.
    """
    if isinstance(query, Require | AllOf | AnyOf):
        return query
    return parse_query(query)
