-- Two-role credential rotation (DESIGN point 25). retiring_role is the
-- login role links used before the current rotation: still enabled (apps
-- not yet redeployed use it) until every linked service runs a release on
-- active_role; then it gets a fresh password nobody knows and NOLOGIN. It
-- stays set when a rotation stops because a release did not go live, so
-- those apps keep working; the next rotation finishes the job.
ALTER TABLE databases
  ADD COLUMN retiring_role text CHECK (retiring_role IN ('a', 'b'));
-- The few databases the leader rotates every rotation_days.
CREATE INDEX databases_rotation_idx ON databases (id)
  WHERE state = 'available' AND rotation_days > 0;
