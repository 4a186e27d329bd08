"""The server's database: tables, sessions, Alembic migrations."""
