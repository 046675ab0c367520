-- A build resolves its branch head in the build job, never while an API
-- request waits: a queued or running build may not know its commit yet.
-- A build whose commit was built before releases that build's image
-- (reused_from) instead of building it again; it does not count for the
-- one-build-per-commit rule, so every deploy request is a build of its own
-- with a release of its own.
ALTER TABLE builds ADD COLUMN reused_from text
  CHECK (reused_from ~ '^bld_[0-9A-HJKMNP-TV-Z]{26}$');

DO $$
DECLARE
  name text;
BEGIN
  SELECT conname INTO name FROM pg_constraint
  WHERE conrelid = 'builds'::regclass AND contype = 'c'
    AND pg_get_constraintdef(oid) LIKE '%commit_sha IS NOT NULL%';
  EXECUTE format('ALTER TABLE builds DROP CONSTRAINT %I', name);
END $$;
ALTER TABLE builds ADD CONSTRAINT builds_commit_known
  CHECK (commit_sha IS NOT NULL OR state IN ('queued', 'running', 'failed', 'cancelled'));

DROP INDEX builds_service_commit_idx;
CREATE UNIQUE INDEX builds_service_commit_idx ON builds (service_id, commit_sha)
  WHERE state IN ('queued', 'running', 'succeeded') AND reused_from IS NULL;

-- StartBuild's per-user limit counts a user's builds in flight.
CREATE INDEX builds_in_flight_idx ON builds (requested_by)
  WHERE state IN ('queued', 'running');
