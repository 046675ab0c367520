-- Custom domains the ingress routes: the deployer's record of the routes it
-- wrote for verified custom domains (the domains table is the certs
-- service's), so that a deleted domain's route is removed after a restart
-- too. One row per routed hostname.
CREATE TABLE custom_routes (
  hostname    text        PRIMARY KEY,
  service_id  text        NOT NULL REFERENCES services (id) ON DELETE CASCADE,
  routed_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX custom_routes_service_idx ON custom_routes (service_id);
