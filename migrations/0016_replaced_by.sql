-- The deployment that took over when this one stopped being live: the one
-- that switched in, or a stop-first deploy (a service whose volumes attach to
-- one instance at a time) that retired this one before it started, and
-- brings it back should it fail.
ALTER TABLE deployments ADD COLUMN replaced_by text;
CREATE INDEX deployments_replaced_by_idx ON deployments (replaced_by)
  WHERE replaced_by IS NOT NULL;
