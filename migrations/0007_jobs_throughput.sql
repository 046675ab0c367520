-- The job queue with fewer writes per job (libs/jobs).

-- Queue depths are counted through the claim and running indexes; an index
-- on (queue, state) took a new entry at every state change.
DROP INDEX jobs_queue_state_idx;

-- Running jobs, for the rescuer and the depth gauge. The lease is not in
-- the index, so a heartbeat (lease_until, updated_at) changes no indexed
-- column and can be a HOT update within its page (hence the fill factor);
-- the rescuer checks the leases of the few running jobs.
DROP INDEX jobs_lease_idx;
CREATE INDEX jobs_running_idx ON jobs (queue) WHERE state = 'running';
ALTER TABLE jobs SET (fillfactor = 90);

-- Scheduled jobs (enqueued for later, or waiting out a retry's backoff):
-- the dispatcher finds the next one due through this small index whatever
-- the statistics say. Jobs due at once never enter it.
CREATE INDEX jobs_scheduled_idx ON jobs (queue, run_at)
  WHERE state = 'available' AND run_at > created_at;

-- Names are checked by libs/jobs before they are written; the regular
-- expressions ran again at every update of every row.
ALTER TABLE jobs DROP CONSTRAINT jobs_queue_check, DROP CONSTRAINT jobs_kind_check;
