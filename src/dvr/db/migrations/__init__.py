"""Alembic migrations of the dvr database (applied on server start)."""
