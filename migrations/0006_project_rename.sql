-- A project's new name takes its routes at once, and its old name stays its
-- own for a while: no other tenant can take it (and the traffic still sent
-- to it) until `until`.
CREATE TABLE project_name_holds (
  name        text        PRIMARY KEY,
  project_id  text        NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
  until       timestamptz NOT NULL
);

-- The hostname the ingress routes to each service's live release, as the
-- deployer last wrote it: when the project or the service is renamed, the
-- old hostname is taken out (also after a restart of the deployer).
CREATE TABLE service_routes (
  service_id  text        PRIMARY KEY REFERENCES services (id) ON DELETE CASCADE,
  hostname    text        NOT NULL,
  updated_at  timestamptz NOT NULL DEFAULT now()
);
