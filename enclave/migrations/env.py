"""Alembic environment: the registry's metadata, the URL from the Alembic config (set by
``enclave.registry.base.alembic_config``) or else from the settings."""
from __future__ import annotations

from alembic import context

from enclave.registry import models  # noqa: F401 - registers every table on the metadata
from enclave.registry.base import Base, get_engine
from enclave.registry.models import UTCDateTime

config = context.config
target_metadata = Base.metadata


def _render_item(type_: str, obj, autogen_context):  # noqa: ANN001, ANN202
    # Migrations must not import the models (they change later): render UTCDateTime as its impl.
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime()"
    return False


def _url() -> str:
    url = config.get_main_option("sqlalchemy.url")
    if url:
        return url
    from enclave.settings import get_settings

    return get_settings().registry_url


def run_migrations_offline() -> None:
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = get_engine(_url())
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",  # SQLite cannot ALTER most things
            compare_type=True,
            render_item=_render_item,
        )
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
