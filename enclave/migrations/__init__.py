"""Alembic migrations of the registry (run through ``enclave.registry.base.upgrade``)."""
