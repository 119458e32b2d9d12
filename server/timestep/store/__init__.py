"""Storage: PostgreSQL through asyncpg. One transaction per state transition."""
