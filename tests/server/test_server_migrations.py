"""The schema comes only from the shipped Alembic migrations, which match the tables."""

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from dvr.db.migrate import alembic_config, current_revision, upgrade_to_head
from dvr.db.session import Database
from dvr.db.tables import metadata


def head() -> str:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def test_migrated_schema_matches_the_tables(db_url):
    database = Database.from_url(db_url)
    try:
        upgrade_to_head(database.engine)  # idempotent on an up-to-date database
        assert current_revision(database.engine) == head()
        with database.engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), metadata)
        assert diff == []
    finally:
        database.dispose()


def test_fresh_sqlite_file_is_migrated_on_start(tmp_path):
    from dvr.server.app import create_app
    from dvr.server.config import ServerConfig

    url = f"sqlite:///{tmp_path / 'state' / 'dvr.db'}"
    app = create_app(ServerConfig(db_url=url))
    app.state.context.db.dispose()
    database = Database.from_url(url)
    assert current_revision(database.engine) == head()
    database.dispose()
