-- 0001_initial: the whole c2d schema (PostgreSQL >= 13).
-- Applied by tools/c2d-migrate inside one transaction; no BEGIN/COMMIT here.
--
-- Conventions
-- - Ownership (DESIGN §2): each section below belongs to one service, which is
--   the only one that writes its tables; others go through its gRPC API.
--   Cross-service foreign keys exist for integrity only. `jobs` is shared.
-- - Resource ids are text: prefix "_" 26 Crockford base32 chars (a ULID), made
--   by the application, e.g. 'svc_01JD3Q8Z7X9K2M4N6P8R0T2V4W'.
-- - States and other enums are lower-case text: the proto enum value's name
--   without its prefix (BUILD_STATE_QUEUED <-> 'queued'). A proto value that
--   is 0 / empty where a column is nullable is stored as NULL (e.g. a
--   worker's port).
-- - Secrets (DESIGN §6) are four columns <secret>_key_id, _wrapped_key,
--   _nonce, _ciphertext (env_vars has no prefix), mirroring the proto
--   EncryptedValue {key_id, wrapped_data_key, nonce, ciphertext}.
-- - jsonb columns holding a proto message (ServiceSpec, job payloads) hold its
--   proto3 JSON with snake_case field names (preserve_proto_field_names).
-- - updated_at is set by the writer (`updated_at = now()`); no triggers.
-- - Projects and services are soft-deleted (deleted_at): other services'
--   rows (builds, deployments, volumes, links, domains) keep referencing them
--   while their asynchronous clean-up runs, and history stays readable.
--   Their foreign keys are therefore RESTRICT; CASCADE is used only where a
--   child is pure metadata or history of its parent.

-- Sealed-secret shape check: all four parts absent, or all present with a
-- 12-byte GCM nonce and a ciphertext of at least the 16-byte tag.
CREATE FUNCTION c2d_sealed_ok(key_id text, wrapped_key bytea, nonce bytea, ciphertext bytea)
  RETURNS boolean LANGUAGE sql IMMUTABLE AS $$
  SELECT num_nulls(key_id, wrapped_key, nonce, ciphertext) = 4
      OR (num_nulls(key_id, wrapped_key, nonce, ciphertext) = 0
          AND key_id <> ''
          AND octet_length(wrapped_key) > 0
          AND octet_length(nonce) = 12
          AND octet_length(ciphertext) >= 16)
$$;

-- ===========================================================================
-- Shared: the job queue (libs/jobs). Every service enqueues here and claims
-- only its own queue. Payload = proto3 JSON of the c2d.v1 message of `kind`
-- (proto/c2d/v1/jobs.proto lists kinds, queues and unique keys).
-- ===========================================================================

CREATE TABLE jobs (
  id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  queue         text        NOT NULL CHECK (queue ~ '^[a-z][a-z0-9_]{0,39}$'),
  kind          text        NOT NULL CHECK (kind ~ '^[a-z][a-z0-9_]{0,39}$'),
  payload       jsonb       NOT NULL DEFAULT '{}'::jsonb,
  state         text        NOT NULL DEFAULT 'available'
                CHECK (state IN ('available', 'running', 'succeeded', 'failed', 'cancelled')),
  priority      smallint    NOT NULL DEFAULT 100,
  run_at        timestamptz NOT NULL DEFAULT now(),
  attempts      integer     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
  max_attempts  integer     NOT NULL DEFAULT 10 CHECK (max_attempts >= 1),
  lease_until   timestamptz,
  locked_by     text,
  unique_key    text,
  last_error    text,
  created_at    timestamptz NOT NULL DEFAULT now(),
  updated_at    timestamptz NOT NULL DEFAULT now(),
  started_at    timestamptz,
  finished_at   timestamptz,
  CHECK ((state = 'running') = (lease_until IS NOT NULL AND locked_by IS NOT NULL))
);
-- The claim query: available jobs of one queue in (priority, run_at, id) order.
CREATE INDEX jobs_claim_idx ON jobs (queue, priority, run_at, id) WHERE state = 'available';
-- The rescuer: running jobs whose lease has expired.
CREATE INDEX jobs_lease_idx ON jobs (lease_until) WHERE state = 'running';
-- Unique jobs: one live job per (queue, unique_key).
CREATE UNIQUE INDEX jobs_unique_key_idx ON jobs (queue, unique_key)
  WHERE unique_key IS NOT NULL AND state IN ('available', 'running');
-- Queue depth metrics.
CREATE INDEX jobs_queue_state_idx ON jobs (queue, state);

-- ===========================================================================
-- gateway: users, API tokens, projects, members, services, env vars,
-- webhooks, idempotency keys, audit log.
-- ===========================================================================

CREATE TABLE users (
  id           text        PRIMARY KEY CHECK (id ~ '^usr_[0-9A-HJKMNP-TV-Z]{26}$'),
  -- Stored lower-cased.
  email        text        NOT NULL UNIQUE
               CHECK (email = lower(email) AND length(email) <= 254 AND email ~ '^[^@[:space:]]+@[^@[:space:]]+$'),
  display_name text        NOT NULL DEFAULT '' CHECK (length(display_name) <= 200),
  created_at   timestamptz NOT NULL DEFAULT now(),
  updated_at   timestamptz NOT NULL DEFAULT now(),
  -- A disabled user's tokens are refused.
  disabled_at  timestamptz
);

CREATE TABLE api_tokens (
  id            text        PRIMARY KEY CHECK (id ~ '^tok_[0-9A-HJKMNP-TV-Z]{26}$'),
  user_id       text        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  name          text        NOT NULL DEFAULT '' CHECK (length(name) <= 100),
  -- The token's first characters, shown to the user to tell tokens apart.
  prefix        text        NOT NULL CHECK (length(prefix) BETWEEN 4 AND 16),
  -- SHA-256 of the whole token (32 random bytes, shown once). Lookup key.
  token_sha256  bytea       NOT NULL UNIQUE CHECK (octet_length(token_sha256) = 32),
  created_at    timestamptz NOT NULL DEFAULT now(),
  last_used_at  timestamptz,
  -- NULL = does not expire.
  expires_at    timestamptz CHECK (expires_at > created_at),
  revoked_at    timestamptz
);
CREATE INDEX api_tokens_user_idx ON api_tokens (user_id, created_at DESC);

CREATE TABLE projects (
  id          text        PRIMARY KEY CHECK (id ~ '^prj_[0-9A-HJKMNP-TV-Z]{26}$'),
  -- Part of every hostname (<service>.<project>.<base_domain>), hence unique
  -- across c2d among live projects.
  name        text        NOT NULL CHECK (name ~ '^[a-z][a-z0-9-]{0,38}$'),
  created_at  timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamptz NOT NULL DEFAULT now(),
  deleted_at  timestamptz
);
CREATE UNIQUE INDEX projects_name_idx ON projects (name) WHERE deleted_at IS NULL;

-- The application keeps at least one owner per live project.
CREATE TABLE project_members (
  project_id  text        NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
  user_id     text        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  role        text        NOT NULL CHECK (role IN ('owner', 'admin', 'developer', 'viewer')),
  created_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (project_id, user_id)
);
CREATE INDEX project_members_user_idx ON project_members (user_id);

-- An app (DESIGN point 7). Columns mirror Source, BuildSettings, RunSettings
-- and HealthCheck of proto/c2d/v1/common.proto with their defaults applied;
-- the gateway snapshots them (plus env, volumes, links) into a ServiceSpec.
CREATE TABLE services (
  id                          text        PRIMARY KEY CHECK (id ~ '^svc_[0-9A-HJKMNP-TV-Z]{26}$'),
  -- RESTRICT: projects are soft-deleted; see the conventions above.
  project_id                  text        NOT NULL REFERENCES projects (id) ON DELETE RESTRICT,
  name                        text        NOT NULL CHECK (name ~ '^[a-z][a-z0-9-]{0,38}$'),
  type                        text        NOT NULL CHECK (type IN ('web', 'worker')),
  -- Grows by one at every change of the service or its env vars
  -- (ServiceSpec.revision).
  revision                    bigint      NOT NULL DEFAULT 1 CHECK (revision >= 1),
  -- Source
  repo_url                    text        NOT NULL CHECK (length(repo_url) BETWEEN 1 AND 2048),
  branch                      text        NOT NULL DEFAULT 'main' CHECK (length(branch) BETWEEN 1 AND 255),
  -- Relative, no "..": '' = the repository root.
  root_dir                    text        NOT NULL DEFAULT ''
                              CHECK (length(root_dir) <= 1024 AND root_dir !~ '(^/|(^|/)\.\.(/|$))'),
  -- true: pushes to `branch` delivered to a webhook build and deploy.
  auto_deploy                 boolean     NOT NULL DEFAULT true,
  -- BuildSettings
  build_strategy              text        NOT NULL DEFAULT 'auto' CHECK (build_strategy IN ('auto', 'dockerfile')),
  dockerfile_path             text        NOT NULL DEFAULT 'Dockerfile'
                              CHECK (length(dockerfile_path) BETWEEN 1 AND 1024 AND dockerfile_path !~ '(^/|(^|/)\.\.(/|$))'),
  build_command               text        NOT NULL DEFAULT '' CHECK (length(build_command) <= 4096),
  -- RunSettings
  start_command               text        NOT NULL DEFAULT '' CHECK (length(start_command) <= 4096),
  -- Web services only (NULL for workers; the proto says 0).
  port                        integer     CHECK (port BETWEEN 1 AND 65535),
  instance_count              integer     NOT NULL DEFAULT 1 CHECK (instance_count BETWEEN 1 AND 20),
  memory_mb                   integer     NOT NULL DEFAULT 512 CHECK (memory_mb BETWEEN 64 AND 65536),
  cpu_millis                  integer     NOT NULL DEFAULT 500 CHECK (cpu_millis BETWEEN 50 AND 16000),
  -- HealthCheck (DESIGN point 11); '' path = TCP connect check. Workers
  -- keep the defaults, which are unused.
  health_path                 text        NOT NULL DEFAULT '/health'
                              CHECK (health_path = '' OR (health_path ~ '^/' AND length(health_path) <= 1024)),
  -- NULL = port.
  health_port                 integer     CHECK (health_port BETWEEN 1 AND 65535),
  health_interval_s           integer     NOT NULL DEFAULT 10 CHECK (health_interval_s BETWEEN 1 AND 300),
  health_timeout_s            integer     NOT NULL DEFAULT 2 CHECK (health_timeout_s BETWEEN 1 AND 60),
  health_healthy_threshold    integer     NOT NULL DEFAULT 1 CHECK (health_healthy_threshold BETWEEN 1 AND 10),
  health_unhealthy_threshold  integer     NOT NULL DEFAULT 3 CHECK (health_unhealthy_threshold BETWEEN 1 AND 10),
  health_start_period_s       integer     NOT NULL DEFAULT 30 CHECK (health_start_period_s BETWEEN 0 AND 3600),
  created_at                  timestamptz NOT NULL DEFAULT now(),
  updated_at                  timestamptz NOT NULL DEFAULT now(),
  deleted_at                  timestamptz,
  CHECK ((type = 'web') = (port IS NOT NULL)),
  CHECK (type = 'web' OR health_port IS NULL),
  CHECK (health_timeout_s <= health_interval_s)
);
-- Names are unique among a project's live services; a deleted service's
-- name can be taken again.
CREATE UNIQUE INDEX services_project_name_idx ON services (project_id, name) WHERE deleted_at IS NULL;

CREATE TABLE env_vars (
  id          text        PRIMARY KEY CHECK (id ~ '^env_[0-9A-HJKMNP-TV-Z]{26}$'),
  service_id  text        NOT NULL REFERENCES services (id) ON DELETE CASCADE,
  -- PORT is set by c2d and cannot be overridden.
  key         text        NOT NULL
              CHECK (key ~ '^[A-Za-z_][A-Za-z0-9_]*$' AND length(key) <= 255 AND key <> 'PORT'),
  -- The value, sealed (EncryptedValue).
  key_id      text        NOT NULL,
  wrapped_key bytea       NOT NULL,
  nonce       bytea       NOT NULL,
  ciphertext  bytea       NOT NULL,
  -- true: write-only through the REST API. Secret by default.
  secret      boolean     NOT NULL DEFAULT true,
  created_at  timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamptz NOT NULL DEFAULT now(),
  UNIQUE (service_id, key),
  CHECK (c2d_sealed_ok(key_id, wrapped_key, nonce, ciphertext))
);

-- One hook per (service, provider); its URL is /v1/webhooks/<provider>/<id>.
CREATE TABLE webhooks (
  id                    text        PRIMARY KEY CHECK (id ~ '^hook_[0-9A-HJKMNP-TV-Z]{26}$'),
  service_id            text        NOT NULL REFERENCES services (id) ON DELETE CASCADE,
  provider              text        NOT NULL CHECK (provider IN ('github', 'gitlab')),
  -- The shared secret (GitHub HMAC key / GitLab token), sealed.
  secret_key_id         text        NOT NULL,
  secret_wrapped_key    bytea       NOT NULL,
  secret_nonce          bytea       NOT NULL,
  secret_ciphertext     bytea       NOT NULL,
  created_at            timestamptz NOT NULL DEFAULT now(),
  updated_at            timestamptz NOT NULL DEFAULT now(),
  last_delivery_at      timestamptz,
  UNIQUE (service_id, provider),
  CHECK (c2d_sealed_ok(secret_key_id, secret_wrapped_key, secret_nonce, secret_ciphertext))
);

-- Replay protection (DESIGN point 21). Only deliveries whose signature or
-- token verified are recorded: the delivery id header is sender-chosen, so
-- recording forged ones would let a forger burn a real delivery's id.
CREATE TABLE webhook_deliveries (
  id           text        PRIMARY KEY CHECK (id ~ '^whd_[0-9A-HJKMNP-TV-Z]{26}$'),
  webhook_id   text        NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
  -- Copy of webhooks.provider, for the replay key.
  provider     text        NOT NULL CHECK (provider IN ('github', 'gitlab')),
  -- X-GitHub-Delivery / X-Gitlab-Event-UUID.
  delivery_id  text        NOT NULL CHECK (length(delivery_id) BETWEEN 1 AND 200),
  -- e.g. 'push', 'ping'.
  event        text        NOT NULL DEFAULT '' CHECK (length(event) <= 100),
  ref          text,
  commit_sha   text        CHECK (commit_sha ~ '^([0-9a-f]{40}|[0-9a-f]{64})$'),
  -- accepted: a build was started (202); ignored: other branch or event (204).
  outcome      text        NOT NULL CHECK (outcome IN ('accepted', 'ignored')),
  -- The build started, if any (builder-owned; no foreign key).
  build_id     text,
  received_at  timestamptz NOT NULL DEFAULT now(),
  UNIQUE (provider, delivery_id)
);
CREATE INDEX webhook_deliveries_hook_idx ON webhook_deliveries (webhook_id, received_at DESC);
-- Retention clean-up.
CREATE INDEX webhook_deliveries_received_idx ON webhook_deliveries (received_at);

-- Idempotency-Key support for mutations (DESIGN §5), per user. A repeat with
-- the same key and the same request gets the stored response; a different
-- request under the same key gets 422. An 'in_progress' row older than the
-- request deadline was abandoned by a crashed gateway and may be taken over.
CREATE TABLE idempotency_keys (
  user_id          text        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  key              text        NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
  method           text        NOT NULL CHECK (method IN ('POST', 'PUT', 'PATCH', 'DELETE')),
  path             text        NOT NULL,
  -- SHA-256 over method, path and body.
  request_sha256   bytea       NOT NULL CHECK (octet_length(request_sha256) = 32),
  state            text        NOT NULL DEFAULT 'in_progress' CHECK (state IN ('in_progress', 'completed')),
  response_status  integer     CHECK (response_status BETWEEN 100 AND 599),
  response_body    text,
  created_at       timestamptz NOT NULL DEFAULT now(),
  updated_at       timestamptz NOT NULL DEFAULT now(),
  expires_at       timestamptz NOT NULL DEFAULT now() + interval '24 hours',
  PRIMARY KEY (user_id, key),
  CHECK (state = 'in_progress' OR response_status IS NOT NULL)
);
CREATE INDEX idempotency_keys_expires_idx ON idempotency_keys (expires_at);

-- Append-only. No foreign keys on purpose: entries outlive the users,
-- tokens and projects they name. Never holds a secret.
CREATE TABLE audit_log (
  id              text        PRIMARY KEY CHECK (id ~ '^aud_[0-9A-HJKMNP-TV-Z]{26}$'),
  at              timestamptz NOT NULL DEFAULT now(),
  -- NULL for c2d's own actions (e.g. a webhook-triggered build).
  actor_user_id   text,
  actor_token_id  text,
  project_id      text,
  -- <resource>.<verb>, e.g. 'service.create', 'env.update', 'database.rotate_credentials'.
  action          text        NOT NULL CHECK (action ~ '^[a-z][a-z_]*(\.[a-z_]+)+$'),
  resource_id     text,
  request_id      text,
  remote_addr     inet,
  details         jsonb       NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX audit_log_project_idx ON audit_log (project_id, at DESC) WHERE project_id IS NOT NULL;
CREATE INDEX audit_log_actor_idx ON audit_log (actor_user_id, at DESC) WHERE actor_user_id IS NOT NULL;
CREATE INDEX audit_log_at_idx ON audit_log (at);

-- ===========================================================================
-- builder: builds, build logs. (services/projects are gateway-owned; the
-- foreign keys to them are for integrity only.)
-- ===========================================================================

CREATE TABLE builds (
  id                text        PRIMARY KEY CHECK (id ~ '^bld_[0-9A-HJKMNP-TV-Z]{26}$'),
  service_id        text        NOT NULL REFERENCES services (id) ON DELETE RESTRICT,
  project_id        text        NOT NULL REFERENCES projects (id) ON DELETE RESTRICT,
  state             text        NOT NULL DEFAULT 'queued'
                    CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
  trigger           text        NOT NULL CHECK (trigger IN ('api', 'webhook')),
  -- 'usr_…' or 'hook_…'.
  requested_by      text,
  -- Source as requested; requested_commit NULL = the branch head.
  repo_url          text        NOT NULL,
  branch            text        NOT NULL,
  root_dir          text        NOT NULL DEFAULT '',
  requested_commit  text        CHECK (requested_commit ~ '^([0-9a-f]{40}|[0-9a-f]{64})$'),
  -- The commit built, resolved by StartBuild before the insert. NULL only for
  -- a build that failed because the repository or branch could not be read.
  commit_sha        text        CHECK (commit_sha ~ '^([0-9a-f]{40}|[0-9a-f]{64})$'),
  commit_author     text,
  commit_message    text        CHECK (length(commit_message) <= 1024),
  -- BuildSettings
  build_strategy    text        NOT NULL CHECK (build_strategy IN ('auto', 'dockerfile')),
  dockerfile_path   text        NOT NULL DEFAULT 'Dockerfile',
  build_command     text        NOT NULL DEFAULT '',
  -- ServiceSpec (proto3 JSON) to deploy with the image.
  spec              jsonb       NOT NULL CHECK (jsonb_typeof(spec) = 'object'),
  skip_deploy       boolean     NOT NULL DEFAULT false,
  -- Output
  image_repository  text,
  image_digest      text        CHECK (image_digest ~ '^sha256:[0-9a-f]{64}$'),
  image_size_bytes  bigint      CHECK (image_size_bytes >= 0),
  failure_reason    text,
  -- The deployment the builder created on success. No foreign key: the
  -- deployment references the build, and a cycle would buy nothing.
  deployment_id     text,
  created_at        timestamptz NOT NULL DEFAULT now(),
  updated_at        timestamptz NOT NULL DEFAULT now(),
  started_at        timestamptz,
  finished_at       timestamptz,
  CHECK (state <> 'succeeded' OR (image_repository IS NOT NULL AND image_digest IS NOT NULL
                                  AND image_size_bytes IS NOT NULL)),
  CHECK (state <> 'failed' OR failure_reason IS NOT NULL),
  CHECK ((state IN ('succeeded', 'failed', 'cancelled')) = (finished_at IS NOT NULL)),
  CHECK (state <> 'running' OR started_at IS NOT NULL),
  CHECK (commit_sha IS NOT NULL OR state = 'failed')
);
-- StartBuild's idempotency: one queued, running or succeeded build per
-- (service, commit). Failed and cancelled builds do not count, so a commit
-- can be built again after a failure. Insert with
-- ON CONFLICT (service_id, commit_sha) WHERE state IN ('queued', 'running', 'succeeded') DO NOTHING.
CREATE UNIQUE INDEX builds_service_commit_idx ON builds (service_id, commit_sha)
  WHERE state IN ('queued', 'running', 'succeeded');
CREATE INDEX builds_service_created_idx ON builds (service_id, created_at DESC, id DESC);
-- Image GC: the newest succeeded builds of a service.
CREATE INDEX builds_service_succeeded_idx ON builds (service_id, finished_at DESC)
  WHERE state = 'succeeded';

-- seq is 1, 2, 3, … per build, written by the one running build job.
CREATE TABLE build_logs (
  build_id  text        NOT NULL REFERENCES builds (id) ON DELETE CASCADE,
  seq       bigint      NOT NULL CHECK (seq >= 1),
  stream    text        NOT NULL CHECK (stream IN ('stdout', 'stderr', 'system')),
  text      text        NOT NULL CHECK (octet_length(text) <= 8192),
  at        timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (build_id, seq)
);

-- ===========================================================================
-- deployer: deployments, instances, volumes, deployment events, runtime log
-- tail. (Foreign keys to gateway and builder tables are for integrity only.)
-- ===========================================================================

-- A release: image digest + ServiceSpec snapshot (DESIGN §2). Never deleted
-- in normal operation: rollbacks need the old ones.
CREATE TABLE deployments (
  id                text        PRIMARY KEY CHECK (id ~ '^dep_[0-9A-HJKMNP-TV-Z]{26}$'),
  service_id        text        NOT NULL REFERENCES services (id) ON DELETE RESTRICT,
  project_id        text        NOT NULL REFERENCES projects (id) ON DELETE RESTRICT,
  -- RESTRICT: image GC keeps every digest a deployment references, so a
  -- build must outlive its deployments.
  build_id          text        NOT NULL REFERENCES builds (id) ON DELETE RESTRICT,
  -- DeployRequest.request_id: idempotency of Deploy/Rollback per service.
  request_id        text        CHECK (length(request_id) BETWEEN 1 AND 255),
  image_repository  text        NOT NULL,
  image_digest      text        NOT NULL CHECK (image_digest ~ '^sha256:[0-9a-f]{64}$'),
  -- ServiceSpec, proto3 JSON; env values still encrypted.
  spec              jsonb       NOT NULL CHECK (jsonb_typeof(spec) = 'object'),
  state             text        NOT NULL DEFAULT 'pending'
                    CHECK (state IN ('pending', 'deploying', 'live', 'failed', 'superseded',
                                     'rolled_back', 'stopped')),
  failure_reason    text,
  -- For a rollback: the earlier deployment whose release this one re-deploys.
  rollback_of       text        REFERENCES deployments (id) ON DELETE RESTRICT,
  created_at        timestamptz NOT NULL DEFAULT now(),
  updated_at        timestamptz NOT NULL DEFAULT now(),
  started_at        timestamptz,
  live_at           timestamptz,
  finished_at       timestamptz,
  UNIQUE (service_id, request_id),
  CHECK (state <> 'failed' OR failure_reason IS NOT NULL),
  CHECK (state NOT IN ('live', 'rolled_back', 'stopped') OR live_at IS NOT NULL),
  CHECK ((state IN ('failed', 'superseded', 'rolled_back', 'stopped')) = (finished_at IS NOT NULL))
);
-- At most one live deployment per service: the switch (old -> superseded,
-- new -> live) happens in one transaction, old row first.
CREATE UNIQUE INDEX deployments_one_live_idx ON deployments (service_id) WHERE state = 'live';
CREATE INDEX deployments_service_created_idx ON deployments (service_id, created_at DESC, id DESC);
CREATE INDEX deployments_build_idx ON deployments (build_id);
-- The reconciler's and the deploy job's working set.
CREATE INDEX deployments_active_idx ON deployments (service_id)
  WHERE state IN ('pending', 'deploying');

CREATE TABLE instances (
  id                    text        PRIMARY KEY CHECK (id ~ '^ins_[0-9A-HJKMNP-TV-Z]{26}$'),
  -- RESTRICT: an instance row stands for a container or server that may
  -- still exist; it must be stopped and its row removed deliberately.
  deployment_id         text        NOT NULL REFERENCES deployments (id) ON DELETE RESTRICT,
  service_id            text        NOT NULL REFERENCES services (id) ON DELETE RESTRICT,
  state                 text        NOT NULL DEFAULT 'starting'
                        CHECK (state IN ('starting', 'healthy', 'unhealthy', 'draining', 'stopped',
                                         'crash_loop', 'lost')),
  provider              text        NOT NULL CHECK (provider IN ('local', 'openstack')),
  -- Container id or Nova server id; NULL until the provider created it.
  provider_ref          text,
  host                  text,
  -- NULL for workers.
  port                  integer     CHECK (port BETWEEN 1 AND 65535),
  restarts              integer     NOT NULL DEFAULT 0 CHECK (restarts >= 0),
  last_restart_at       timestamptz,
  -- Restart backoff (1 s -> 5 min): not restarted before this.
  next_restart_at       timestamptz,
  -- Health-check counters, persisted so a new deployer leader carries on.
  consecutive_passes    integer     NOT NULL DEFAULT 0 CHECK (consecutive_passes >= 0),
  consecutive_failures  integer     NOT NULL DEFAULT 0 CHECK (consecutive_failures >= 0),
  last_health_check_at  timestamptz,
  last_health_ok        boolean,
  last_health_detail    text,
  created_at            timestamptz NOT NULL DEFAULT now(),
  updated_at            timestamptz NOT NULL DEFAULT now(),
  stopped_at            timestamptz,
  CHECK ((state = 'stopped') = (stopped_at IS NOT NULL))
);
CREATE INDEX instances_deployment_idx ON instances (deployment_id);
CREATE INDEX instances_service_running_idx ON instances (service_id) WHERE state <> 'stopped';

-- A volume binds its service to one instance (DESIGN point 13).
CREATE TABLE volumes (
  id              text        PRIMARY KEY CHECK (id ~ '^vol_[0-9A-HJKMNP-TV-Z]{26}$'),
  -- RESTRICT: a volume holds user data; it goes through DeleteVolume.
  service_id      text        NOT NULL REFERENCES services (id) ON DELETE RESTRICT,
  project_id      text        NOT NULL REFERENCES projects (id) ON DELETE RESTRICT,
  name            text        NOT NULL CHECK (name ~ '^[a-z][a-z0-9-]{0,38}$'),
  size_gb         integer     NOT NULL CHECK (size_gb BETWEEN 1 AND 1024),
  mount_path      text        NOT NULL
                  CHECK (mount_path ~ '^/.' AND length(mount_path) <= 1024 AND mount_path !~ '(^|/)\.\.(/|$)'),
  state           text        NOT NULL DEFAULT 'pending'
                  CHECK (state IN ('pending', 'available', 'attached', 'deleting', 'deleted', 'failed')),
  -- Cinder volume id or local directory; NULL until created.
  provider_ref    text,
  instance_id     text        REFERENCES instances (id) ON DELETE SET NULL,
  failure_reason  text,
  created_at      timestamptz NOT NULL DEFAULT now(),
  updated_at      timestamptz NOT NULL DEFAULT now(),
  deleted_at      timestamptz,
  CHECK (state <> 'attached' OR instance_id IS NOT NULL),
  CHECK ((state = 'deleted') = (deleted_at IS NOT NULL))
);
CREATE UNIQUE INDEX volumes_service_name_idx ON volumes (service_id, name) WHERE state <> 'deleted';
CREATE UNIQUE INDEX volumes_service_mount_idx ON volumes (service_id, mount_path) WHERE state <> 'deleted';

-- Deployment and instance events (DeploymentEvent). seq orders them for
-- streaming and resumption; it is assigned at insert, so a reader following
-- with "seq > last" can in rare cases see a lower seq commit late.
CREATE TABLE deployment_events (
  id             text        PRIMARY KEY CHECK (id ~ '^evt_[0-9A-HJKMNP-TV-Z]{26}$'),
  seq            bigint      GENERATED ALWAYS AS IDENTITY UNIQUE,
  deployment_id  text        NOT NULL REFERENCES deployments (id) ON DELETE CASCADE,
  service_id     text        NOT NULL REFERENCES services (id) ON DELETE CASCADE,
  -- NULL for deployment-level events.
  instance_id    text        REFERENCES instances (id) ON DELETE CASCADE,
  kind           text        NOT NULL CHECK (kind ~ '^[a-z][a-z0-9_.]{0,63}$'),
  message        text        NOT NULL DEFAULT '',
  at             timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX deployment_events_deployment_idx ON deployment_events (deployment_id, seq);
CREATE INDEX deployment_events_service_idx ON deployment_events (service_id, seq);
-- Crash-loop detection: restarts of an instance in the last 10 minutes.
CREATE INDEX deployment_events_instance_idx ON deployment_events (instance_id, at)
  WHERE instance_id IS NOT NULL;

-- The recent runtime output of each service's instances: a bounded tail
-- (the deployer trims it to its newest lines per service), not an archive.
-- seq as in deployment_events.
CREATE TABLE runtime_log_tail (
  seq          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  service_id   text        NOT NULL REFERENCES services (id) ON DELETE CASCADE,
  instance_id  text        NOT NULL REFERENCES instances (id) ON DELETE CASCADE,
  stream       text        NOT NULL CHECK (stream IN ('stdout', 'stderr', 'system')),
  text         text        NOT NULL CHECK (octet_length(text) <= 8192),
  at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX runtime_log_tail_service_idx ON runtime_log_tail (service_id, seq);
CREATE INDEX runtime_log_tail_instance_idx ON runtime_log_tail (instance_id, seq);

-- ===========================================================================
-- dbprov: databases, database links, backups.
-- ===========================================================================

-- Soft-deleted (state 'deleted'). Two login roles <db>_a and <db>_b with
-- their passwords sealed; active_role is the one links use (DESIGN point 25).
CREATE TABLE databases (
  id                      text        PRIMARY KEY CHECK (id ~ '^db_[0-9A-HJKMNP-TV-Z]{26}$'),
  project_id              text        NOT NULL REFERENCES projects (id) ON DELETE RESTRICT,
  name                    text        NOT NULL CHECK (name ~ '^[a-z][a-z0-9-]{0,38}$'),
  engine                  text        NOT NULL CHECK (engine IN ('postgres', 'mariadb', 'redis')),
  version                 text        NOT NULL CHECK (version ~ '^[0-9]+(\.[0-9]+)*$'),
  plan                    text        NOT NULL DEFAULT 'small' CHECK (plan ~ '^[a-z][a-z0-9-]{0,38}$'),
  state                   text        NOT NULL DEFAULT 'provisioning'
                          CHECK (state IN ('provisioning', 'available', 'failed', 'deleting', 'deleted',
                                           'restoring', 'rotating')),
  failure_reason          text,
  -- Internal DNS name; port set once provisioned.
  host                    text,
  port                    integer     CHECK (port BETWEEN 1 AND 65535),
  -- Nova server id, container id or local data directory.
  provider_ref            text,
  active_role             text        NOT NULL DEFAULT 'a' CHECK (active_role IN ('a', 'b')),
  password_a_key_id       text        NOT NULL,
  password_a_wrapped_key  bytea       NOT NULL,
  password_a_nonce        bytea       NOT NULL,
  password_a_ciphertext   bytea       NOT NULL,
  password_b_key_id       text        NOT NULL,
  password_b_wrapped_key  bytea       NOT NULL,
  password_b_nonce        bytea       NOT NULL,
  password_b_ciphertext   bytea       NOT NULL,
  -- 5-field cron, UTC; '' = no scheduled backups.
  backup_schedule         text        NOT NULL DEFAULT '0 3 * * *'
                          CHECK (backup_schedule = '' OR backup_schedule ~ '^\S+( \S+){4}$'),
  retention_daily         integer     NOT NULL DEFAULT 7 CHECK (retention_daily BETWEEN 0 AND 366),
  retention_weekly        integer     NOT NULL DEFAULT 4 CHECK (retention_weekly BETWEEN 0 AND 520),
  -- 0 = rotate only on request.
  rotation_days           integer     NOT NULL DEFAULT 0 CHECK (rotation_days BETWEEN 0 AND 3650),
  -- The backup scheduler's cursor (leader): next scheduled backup due.
  next_backup_at          timestamptz,
  last_backup_at          timestamptz,
  last_rotated_at         timestamptz,
  created_at              timestamptz NOT NULL DEFAULT now(),
  updated_at              timestamptz NOT NULL DEFAULT now(),
  deleted_at              timestamptz,
  CHECK (c2d_sealed_ok(password_a_key_id, password_a_wrapped_key, password_a_nonce, password_a_ciphertext)),
  CHECK (c2d_sealed_ok(password_b_key_id, password_b_wrapped_key, password_b_nonce, password_b_ciphertext)),
  CHECK (state <> 'available' OR (host IS NOT NULL AND port IS NOT NULL)),
  CHECK (state <> 'failed' OR failure_reason IS NOT NULL),
  CHECK ((state = 'deleted') = (deleted_at IS NOT NULL))
);
CREATE UNIQUE INDEX databases_project_name_idx ON databases (project_id, name) WHERE state <> 'deleted';
CREATE INDEX databases_project_created_idx ON databases (project_id, created_at DESC, id DESC);
CREATE INDEX databases_backup_due_idx ON databases (next_backup_at)
  WHERE state = 'available' AND backup_schedule <> '';

-- A link is metadata of its database and service: CASCADE both ways.
-- DeleteDatabase refuses while links exist, so the cascade only serves purges.
CREATE TABLE database_links (
  id           text        PRIMARY KEY CHECK (id ~ '^dbl_[0-9A-HJKMNP-TV-Z]{26}$'),
  database_id  text        NOT NULL REFERENCES databases (id) ON DELETE CASCADE,
  service_id   text        NOT NULL REFERENCES services (id) ON DELETE CASCADE,
  project_id   text        NOT NULL REFERENCES projects (id) ON DELETE RESTRICT,
  env_prefix   text        NOT NULL CHECK (env_prefix ~ '^[A-Z][A-Z0-9_]{0,31}$'),
  created_at   timestamptz NOT NULL DEFAULT now(),
  UNIQUE (database_id, service_id),
  -- Two links of one service must not inject the same variables.
  UNIQUE (service_id, env_prefix)
);

CREATE TABLE backups (
  id              text        PRIMARY KEY CHECK (id ~ '^bak_[0-9A-HJKMNP-TV-Z]{26}$'),
  -- RESTRICT: a backup row stands for a stored object; retention or the
  -- delete_db job removes the object and then the row.
  database_id     text        NOT NULL REFERENCES databases (id) ON DELETE RESTRICT,
  state           text        NOT NULL DEFAULT 'pending'
                  CHECK (state IN ('pending', 'running', 'succeeded', 'failed')),
  kind            text        NOT NULL CHECK (kind IN ('manual', 'scheduled')),
  object_key      text        UNIQUE,
  size_bytes      bigint      CHECK (size_bytes >= 0),
  -- Lower-case hex.
  sha256          text        CHECK (sha256 ~ '^[0-9a-f]{64}$'),
  failure_reason  text,
  created_at      timestamptz NOT NULL DEFAULT now(),
  updated_at      timestamptz NOT NULL DEFAULT now(),
  started_at      timestamptz,
  finished_at     timestamptz,
  CHECK (state <> 'succeeded' OR (object_key IS NOT NULL AND size_bytes IS NOT NULL AND sha256 IS NOT NULL)),
  CHECK (state <> 'failed' OR failure_reason IS NOT NULL),
  CHECK ((state IN ('succeeded', 'failed')) = (finished_at IS NOT NULL))
);
CREATE INDEX backups_database_created_idx ON backups (database_id, created_at DESC, id DESC);

-- ===========================================================================
-- dns: zones, records.
-- ===========================================================================

-- Created by the DNS service at start from its configuration.
CREATE TABLE dns_zones (
  id               text        PRIMARY KEY CHECK (id ~ '^zone_[0-9A-HJKMNP-TV-Z]{26}$'),
  -- Lower-case, no trailing dot.
  name             text        NOT NULL UNIQUE
                   CHECK (name ~ '^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{0,61}[a-z0-9]$'
                          AND length(name) <= 253),
  kind             text        NOT NULL CHECK (kind IN ('public', 'internal')),
  -- SOA serial, +1 per change (in the transaction that changes records);
  -- wraps from 4294967295 to 1 (RFC 1982 arithmetic).
  serial           bigint      NOT NULL DEFAULT 1 CHECK (serial BETWEEN 1 AND 4294967295),
  -- Serial the backend last confirmed.
  synced_serial    bigint      NOT NULL DEFAULT 0 CHECK (synced_serial BETWEEN 0 AND 4294967295),
  last_synced_at   timestamptz,
  last_sync_error  text,
  created_at       timestamptz NOT NULL DEFAULT now(),
  updated_at       timestamptz NOT NULL DEFAULT now()
);

-- A record set (proto Record). Also enforced by the DNS service, not here:
-- the name lies inside its zone, and a CNAME name has no other record.
CREATE TABLE dns_records (
  id          text        PRIMARY KEY CHECK (id ~ '^rec_[0-9A-HJKMNP-TV-Z]{26}$'),
  -- CASCADE: records are the zone's content.
  zone_id     text        NOT NULL REFERENCES dns_zones (id) ON DELETE CASCADE,
  -- FQDN, lower-case, no trailing dot; '_' allowed for _acme-challenge.
  name        text        NOT NULL CHECK (name ~ '^[a-z0-9_*]([a-z0-9_.-]*[a-z0-9])?$' AND length(name) <= 253),
  type        text        NOT NULL CHECK (type IN ('a', 'aaaa', 'cname', 'txt')),
  ttl         integer     NOT NULL DEFAULT 60 CHECK (ttl BETWEEN 1 AND 86400),
  -- Record.values ("values" is an SQL keyword).
  rdata       text[]      NOT NULL
              CHECK (cardinality(rdata) BETWEEN 1 AND 100 AND array_position(rdata, NULL) IS NULL),
  -- '<kind>:<id>', e.g. 'service:svc_…', 'database:db_…', 'certificate:crt_…', 'system:ns'.
  owner       text        NOT NULL CHECK (owner ~ '^(service|database|certificate|system):[A-Za-z0-9_.-]{1,64}$'),
  created_at  timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamptz NOT NULL DEFAULT now(),
  UNIQUE (zone_id, name, type),
  CHECK (type <> 'cname' OR cardinality(rdata) = 1)
);
CREATE INDEX dns_records_owner_idx ON dns_records (owner);
CREATE INDEX dns_records_name_idx ON dns_records (name);

-- ===========================================================================
-- certs: ACME accounts, domains, certificates.
-- ===========================================================================

CREATE TABLE acme_accounts (
  id                      text        PRIMARY KEY CHECK (id ~ '^acct_[0-9A-HJKMNP-TV-Z]{26}$'),
  directory_url           text        NOT NULL,
  email                   text,
  -- The account URL (JWS "kid"); NULL until registered.
  account_url             text,
  state                   text        NOT NULL DEFAULT 'unregistered'
                          CHECK (state IN ('unregistered', 'valid', 'deactivated')),
  -- The account's private key (PKCS#8 DER), sealed.
  account_key_key_id      text        NOT NULL,
  account_key_wrapped_key bytea       NOT NULL,
  account_key_nonce       bytea       NOT NULL,
  account_key_ciphertext  bytea       NOT NULL,
  created_at              timestamptz NOT NULL DEFAULT now(),
  updated_at              timestamptz NOT NULL DEFAULT now(),
  CHECK (c2d_sealed_ok(account_key_key_id, account_key_wrapped_key, account_key_nonce, account_key_ciphertext)),
  CHECK (state <> 'valid' OR account_url IS NOT NULL)
);
-- One usable account per CA directory.
CREATE UNIQUE INDEX acme_accounts_directory_idx ON acme_accounts (directory_url) WHERE state <> 'deactivated';

CREATE TABLE domains (
  id                       text        PRIMARY KEY CHECK (id ~ '^dom_[0-9A-HJKMNP-TV-Z]{26}$'),
  -- CASCADE: a domain is metadata of its service (services are soft-deleted;
  -- the gateway deletes domains through CertService first).
  service_id               text        NOT NULL REFERENCES services (id) ON DELETE CASCADE,
  project_id               text        NOT NULL REFERENCES projects (id) ON DELETE RESTRICT,
  -- Lower-case FQDN, no trailing dot, no wildcard; unique across c2d.
  hostname                 text        NOT NULL UNIQUE
                           CHECK (hostname ~ '^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{0,61}[a-z0-9]$'
                                  AND length(hostname) <= 253),
  kind                     text        NOT NULL CHECK (kind IN ('default', 'custom')),
  verification_state       text        NOT NULL DEFAULT 'pending'
                           CHECK (verification_state IN ('pending', 'verified', 'failed')),
  -- custom: what the user's CNAME must point at.
  cname_target             text,
  last_verification_error  text,
  verification_attempts    integer     NOT NULL DEFAULT 0 CHECK (verification_attempts >= 0),
  next_verification_at     timestamptz,
  created_at               timestamptz NOT NULL DEFAULT now(),
  updated_at               timestamptz NOT NULL DEFAULT now(),
  verified_at              timestamptz,
  CHECK (kind <> 'custom' OR cname_target IS NOT NULL),
  CHECK ((verification_state = 'verified') = (verified_at IS NOT NULL))
);
CREATE INDEX domains_service_idx ON domains (service_id, hostname);
CREATE INDEX domains_project_idx ON domains (project_id, hostname);
CREATE INDEX domains_verification_due_idx ON domains (next_verification_at)
  WHERE verification_state = 'pending';

-- One certificate per domain, renewed in place: the served chain and key
-- (private_key_*) are replaced only when a renewal succeeds. The key of the
-- ACME order in flight is kept in order_key_* so a re-run job finalises the
-- same order with the same key; it moves to private_key_* on success.
CREATE TABLE certificates (
  id                       text        PRIMARY KEY CHECK (id ~ '^crt_[0-9A-HJKMNP-TV-Z]{26}$'),
  domain_id                text        NOT NULL UNIQUE REFERENCES domains (id) ON DELETE CASCADE,
  -- RESTRICT: an account with certificates is deactivated, not deleted.
  acme_account_id          text        REFERENCES acme_accounts (id) ON DELETE RESTRICT,
  -- Subject alternative names, the domain's hostname first.
  hostnames                text[]      NOT NULL
                           CHECK (cardinality(hostnames) BETWEEN 1 AND 100 AND array_position(hostnames, NULL) IS NULL),
  state                    text        NOT NULL DEFAULT 'pending'
                           CHECK (state IN ('pending', 'issued', 'renewal_failing', 'failed', 'expired')),
  -- The current certificate (public; PEM chain, leaf first) and its key
  -- (PKCS#8 DER, sealed).
  certificate_chain_pem    text,
  private_key_key_id       text,
  private_key_wrapped_key  bytea,
  private_key_nonce        bytea,
  private_key_ciphertext   bytea,
  not_before               timestamptz,
  not_after                timestamptz,
  -- Lower-case hex.
  serial                   text        CHECK (serial ~ '^[0-9a-f]+$'),
  issuer                   text,
  -- The ACME order in flight, if any.
  acme_order_url           text,
  order_key_key_id         text,
  order_key_wrapped_key    bytea,
  order_key_nonce          bytea,
  order_key_ciphertext     bytea,
  -- The renewal sweep's cursor (DESIGN point 20).
  next_renewal_at          timestamptz,
  -- Failed attempts since the last success; drives the 1 h -> 24 h backoff.
  renewal_attempts         integer     NOT NULL DEFAULT 0 CHECK (renewal_attempts >= 0),
  last_error               text,
  last_attempt_at          timestamptz,
  created_at               timestamptz NOT NULL DEFAULT now(),
  updated_at               timestamptz NOT NULL DEFAULT now(),
  CHECK (c2d_sealed_ok(private_key_key_id, private_key_wrapped_key, private_key_nonce, private_key_ciphertext)),
  CHECK (c2d_sealed_ok(order_key_key_id, order_key_wrapped_key, order_key_nonce, order_key_ciphertext)),
  -- Once issued, a certificate always has its chain, key and validity.
  CHECK (state NOT IN ('issued', 'renewal_failing', 'expired')
         OR (certificate_chain_pem IS NOT NULL AND private_key_key_id IS NOT NULL
             AND not_before IS NOT NULL AND not_after IS NOT NULL AND serial IS NOT NULL)),
  CHECK (not_after > not_before),
  CHECK (state <> 'renewal_failing' OR last_error IS NOT NULL)
);
CREATE INDEX certificates_renewal_due_idx ON certificates (next_renewal_at)
  WHERE state IN ('issued', 'renewal_failing', 'expired');
CREATE INDEX certificates_not_after_idx ON certificates (not_after) WHERE not_after IS NOT NULL;
