"""Alembic migrations of the checkpoint database, shipped as `bulkops.migrations`."""
