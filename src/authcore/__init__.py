"""authcore: API authentication with one normalized principal."""
