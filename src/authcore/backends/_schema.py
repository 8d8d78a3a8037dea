"""The SQL stores' schema: its migrations, in order, and the one way they are applied.

SQLite and PostgreSQL share the statements; a :class:`~authcore.backends._sql.Dialect` fills
their ``{name}`` slots. :func:`authcore.backends._sql.migrate` applies them under the
migration lock the driver holds.
"""

from __future__ import annotations

from typing import Final

__all__ = ["MIGRATIONS", "SCHEMA_VERSION"]


#: Ordered schema migrations; version N is ``MIGRATIONS[N - 1]``. Never edit a released
#: entry: append a new one. Each is a list of statements run in one transaction.
MIGRATIONS: Final[tuple[tuple[str, ...], ...]] = (
    (
        """CREATE TABLE workspaces (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            disabled INTEGER NOT NULL DEFAULT 0,
            rate_limit INTEGER,
            rate_period INTEGER,
            org_id TEXT UNIQUE,
            created_at BIGINT NOT NULL
        )""",
        """CREATE TABLE root_keys (
            id TEXT PRIMARY KEY,
            workspace_id TEXT NOT NULL REFERENCES workspaces (id),
            digest {bytes} NOT NULL UNIQUE,
            start TEXT NOT NULL,
            name TEXT,
            permissions TEXT NOT NULL,
            created_at BIGINT NOT NULL,
            expires_at BIGINT,
            revoked_at BIGINT
        )""",
        "CREATE INDEX root_keys_workspace ON root_keys (workspace_id, created_at)",
        """CREATE TABLE portal_sessions (
            id TEXT PRIMARY KEY,
            workspace_id TEXT NOT NULL REFERENCES workspaces (id),
            end_user_id TEXT NOT NULL,
            digest {bytes} NOT NULL UNIQUE,
            permissions TEXT NOT NULL,
            created_at BIGINT NOT NULL,
            expires_at BIGINT NOT NULL,
            revoked_at BIGINT
        )""",
        "CREATE INDEX portal_sessions_workspace ON portal_sessions (workspace_id)",
        # No foreign key on workspace_id: events may outlive or precede what they describe.
        """CREATE TABLE audit_events (
            seq {seq},
            id TEXT NOT NULL UNIQUE,
            workspace_id TEXT NOT NULL,
            time BIGINT NOT NULL,
            action TEXT NOT NULL,
            actor TEXT NOT NULL,
            targets TEXT NOT NULL,
            request_id TEXT,
            source TEXT,
            context TEXT NOT NULL
        )""",
        "CREATE INDEX audit_events_page ON audit_events (workspace_id, time, seq)",
        """CREATE TABLE dashboard_users (
            user_id TEXT PRIMARY KEY,
            org_id TEXT NOT NULL,
            password_hash TEXT NOT NULL,
            permissions TEXT NOT NULL
        )""",
    ),
    # 2: one-time portal exchange codes, by digest; used_at set by the one exchange that works.
    (
        """CREATE TABLE portal_exchanges (
            digest {bytes} PRIMARY KEY,
            session_id TEXT NOT NULL REFERENCES portal_sessions (id),
            created_at BIGINT NOT NULL,
            expires_at BIGINT NOT NULL,
            used_at BIGINT
        )""",
        "CREATE INDEX portal_exchanges_expiry ON portal_exchanges (expires_at)",
    ),
    # 3: usage counts per workspace, credential and outcome, in minute (span 60) and hour
    # (span 3600) buckets; the last time each credential was allowed; a key's own rate limit.
    (
        """CREATE TABLE usage_counts (
            workspace_id TEXT NOT NULL,
            credential_id TEXT NOT NULL,
            outcome TEXT NOT NULL,
            span INTEGER NOT NULL,
            bucket BIGINT NOT NULL,
            count BIGINT NOT NULL,
            PRIMARY KEY (workspace_id, span, bucket, credential_id, outcome)
        )""",
        "CREATE INDEX usage_counts_credential ON usage_counts (credential_id, bucket)",
        """CREATE TABLE credential_last_used (
            workspace_id TEXT NOT NULL,
            credential_id TEXT NOT NULL,
            last_used_at BIGINT NOT NULL,
            PRIMARY KEY (workspace_id, credential_id)
        )""",
        "ALTER TABLE root_keys ADD COLUMN rate_limit INTEGER",
        "ALTER TABLE root_keys ADD COLUMN rate_period INTEGER",
    ),
    # 4: identities (the API's customers), which own keys and portal sessions. A portal
    # session now belongs to an identity (its end_user_id column becomes identity_id) and
    # carries what keys made in the portal may hold. Sessions made before identities existed
    # were not scoped to anyone's keys, so they end here (revoked as of their creation).
    (
        """CREATE TABLE identities (
            id TEXT PRIMARY KEY,
            workspace_id TEXT NOT NULL REFERENCES workspaces (id),
            external_id TEXT NOT NULL,
            meta TEXT,
            rate_limit INTEGER,
            rate_period INTEGER,
            created_at BIGINT NOT NULL,
            UNIQUE (workspace_id, external_id)
        )""",
        # No foreign key: a revoked key keeps naming the identity it belonged to after the
        # identity is deleted, as audit events do.
        "ALTER TABLE root_keys ADD COLUMN identity_id TEXT",
        "CREATE INDEX root_keys_identity ON root_keys (identity_id, created_at)",
        "ALTER TABLE portal_sessions RENAME COLUMN end_user_id TO identity_id",
        "ALTER TABLE portal_sessions ADD COLUMN key_permissions TEXT NOT NULL DEFAULT '[]'",
        "CREATE INDEX portal_sessions_identity ON portal_sessions (identity_id)",
        "UPDATE portal_sessions SET revoked_at = created_at WHERE revoked_at IS NULL",
    ),
    # 5: the invalidation outbox (authcore.backends.outbox): every change that writes appends
    # what caches must drop, in its own transaction; every serving process follows it by seq.
    # created_at is the database's clock, for pruning.
    (
        """CREATE TABLE invalidations (
            seq {seq},
            created_at BIGINT NOT NULL,
            message TEXT NOT NULL
        )""",
        "CREATE INDEX invalidations_created ON invalidations (created_at)",
    ),
    # 6: a portal session's own rate limit (issue 26, finding 2): a session made by a
    # credential with a limit holds at most that limit. Older sessions have none.
    (
        "ALTER TABLE portal_sessions ADD COLUMN rate_limit INTEGER",
        "ALTER TABLE portal_sessions ADD COLUMN rate_period INTEGER",
    ),
)

SCHEMA_VERSION: Final = len(MIGRATIONS)
