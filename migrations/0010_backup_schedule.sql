-- Backups by schedule and on delete (DESIGN point 15): the leader enqueues
-- a scheduled backup when databases.next_backup_at is due; retention prunes
-- only scheduled ones. DeleteDatabase takes a final backup first, kept
-- after the database is gone.
ALTER TABLE backups DROP CONSTRAINT backups_kind_check,
  ADD CONSTRAINT backups_kind_check CHECK (kind IN ('manual', 'scheduled', 'final'));
-- A database whose scheduled backups the leader looks at: due, or never
-- given a time yet (next_backup_at is NULL until the first pass).
DROP INDEX databases_backup_due_idx;
CREATE INDEX databases_backup_due_idx ON databases (next_backup_at NULLS FIRST)
  WHERE state = 'available' AND backup_schedule <> '';
-- Retention reads a database's succeeded scheduled backups.
CREATE INDEX backups_database_kind_idx ON backups (database_id, kind, created_at DESC);
