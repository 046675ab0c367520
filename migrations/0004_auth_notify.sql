-- The gateway caches who a token belongs to. Revoking a token (or moving
-- its expiry), disabling or deleting a user, by any means, notifies
-- "c2d_auth" in the same transaction, and every gateway empties its cache at
-- once. Touching last_used_at does not.
CREATE FUNCTION c2d_auth_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('c2d_auth', TG_TABLE_NAME);
  RETURN NULL;
END $$;

CREATE TRIGGER api_tokens_revoked AFTER UPDATE OF revoked_at, expires_at ON api_tokens
  FOR EACH ROW
  WHEN (OLD.revoked_at IS DISTINCT FROM NEW.revoked_at
        OR OLD.expires_at IS DISTINCT FROM NEW.expires_at)
  EXECUTE FUNCTION c2d_auth_changed();
CREATE TRIGGER api_tokens_deleted AFTER DELETE ON api_tokens
  FOR EACH STATEMENT EXECUTE FUNCTION c2d_auth_changed();
CREATE TRIGGER users_disabled AFTER UPDATE OF disabled_at ON users
  FOR EACH ROW WHEN (OLD.disabled_at IS DISTINCT FROM NEW.disabled_at)
  EXECUTE FUNCTION c2d_auth_changed();
CREATE TRIGGER users_deleted AFTER DELETE ON users
  FOR EACH STATEMENT EXECUTE FUNCTION c2d_auth_changed();
