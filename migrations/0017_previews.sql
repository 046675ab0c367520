-- Preview environments: a service made from a pull request (GitHub) or merge
-- request (GitLab) of another service's repository, with that service's
-- settings and env, deleted when the request closes. One live preview per
-- (parent, request number).
ALTER TABLE services
  ADD COLUMN preview_of text REFERENCES services (id) ON DELETE RESTRICT,
  ADD COLUMN preview_number integer CHECK (preview_number > 0),
  ADD CHECK ((preview_of IS NULL) = (preview_number IS NULL));
CREATE UNIQUE INDEX services_preview_idx ON services (preview_of, preview_number)
  WHERE preview_of IS NOT NULL AND deleted_at IS NULL;

-- What a pull request's delivery did to its preview: the service it made,
-- redeployed or deleted, and the address it answers at; and for any ignored
-- delivery, why.
ALTER TABLE webhook_deliveries
  ADD COLUMN preview_service_id text,
  ADD COLUMN preview_url text,
  ADD COLUMN reason text CHECK (length(reason) <= 1000);
