-- What c2d made in a cloud (the OpenStack provider's servers, ports,
-- floating IPs, volumes, networks, ...), recorded before the call that
-- makes each one, so that nothing is leaked: a failed step deletes what its
-- instance had made, and after a crash the rows say what to find (by name,
-- when the id never came back) and delete.
CREATE TABLE cloud_resources (
  provider    text        NOT NULL,
  kind        text        NOT NULL,
  name        text        NOT NULL,
  -- what it belongs to: an instance's name, "network:<name>" or "volume:<name>"
  owner       text        NOT NULL,
  -- the cloud's id; NULL until the call that makes it has answered
  cloud_id    text,
  recorded_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  PRIMARY KEY (provider, kind, name)
);
CREATE INDEX cloud_resources_owner_idx ON cloud_resources (provider, owner, recorded_at);
CREATE INDEX cloud_resources_cloud_id_idx ON cloud_resources (provider, cloud_id);
