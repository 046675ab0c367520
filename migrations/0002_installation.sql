-- The identity of this c2d installation: one row, made once. The deployer
-- labels every instance it runs with it, so that on a container engine that
-- other installations (or test runs) share, it only ever adopts or removes
-- its own containers.
CREATE TABLE installation (
  singleton   boolean     PRIMARY KEY DEFAULT true CHECK (singleton),
  id          text        NOT NULL CHECK (id ~ '^[0-9a-f]{32}$'),
  created_at  timestamptz NOT NULL DEFAULT now()
);
INSERT INTO installation (id) VALUES (md5(random()::text || clock_timestamp()::text));
