"""Storage and rate-limit backends for authcore's protocols: memory, SQLite, PostgreSQL, Redis."""
