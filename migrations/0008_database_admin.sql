-- Managed databases run as containers of their own (dbprov): each server
-- has an administrator (PostgreSQL's superuser `postgres`) that only dbprov
-- uses, to make the login roles and for backups; its password is sealed
-- like the login roles' (bound to the database id). No database row exists
-- before this release, so the columns can be required.
ALTER TABLE databases
  ADD COLUMN admin_password_key_id      text  NOT NULL,
  ADD COLUMN admin_password_wrapped_key bytea NOT NULL,
  ADD COLUMN admin_password_nonce       bytea NOT NULL,
  ADD COLUMN admin_password_ciphertext  bytea NOT NULL,
  ADD CONSTRAINT databases_admin_password_check CHECK (
    c2d_sealed_ok(admin_password_key_id, admin_password_wrapped_key, admin_password_nonce,
                  admin_password_ciphertext));
