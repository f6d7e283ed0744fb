"""Alembic migrations of the records store, run by `activities.records.migrate` at start.

Add a table: define it in a module of `activities/records/` on `schema.metadata`, then add a revision
to `versions/` (`NNNN_<what>.py`, `down_revision` = the previous one) that creates it with `op.*` —
written out, never imported from `schema`, so old revisions keep meaning what they did. SQLite runs
migrations in batch mode, so `op.batch_alter_table` works on both databases."""
