-- A repository URL with credentials in it (https://user:token@host/…) is
-- stored sealed, like a secret env var: repo_url_sealed holds the whole URL
-- (a c2d.v1.EncryptedValue, bound to the service id), and repo_url then
-- shows the credentials masked (https://***@host/…), as the API returns it.
ALTER TABLE services ADD COLUMN repo_url_sealed bytea;

-- The same for the copy each build keeps (bound to the build id).
ALTER TABLE builds ADD COLUMN repo_url_sealed bytea;
