-- Every backup is restore-verified before it counts (DESIGN point 15): a
-- scratch server restores it and its tables and row counts are compared
-- with the source's at dump time; what was found is kept with the backup.
ALTER TABLE backups
  ADD COLUMN verified_at  timestamptz,
  ADD COLUMN verification text,
  ADD CONSTRAINT backups_verified_check CHECK (state <> 'succeeded' OR verified_at IS NOT NULL);
