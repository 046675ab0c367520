-- The certs service. Private names (*.localhost, the internal zone) get
-- certificates from c2d's own CA, made once and kept here with its key
-- sealed; other names from the ACME CA of C2D_ACME_DIRECTORY.
CREATE TABLE cert_authorities (
  -- One internal CA per installation.
  id               text        PRIMARY KEY CHECK (id = 'internal'),
  certificate_pem  text        NOT NULL,
  -- Its private key (PKCS#8 DER), sealed.
  key_key_id       text        NOT NULL,
  key_wrapped_key  bytea       NOT NULL,
  key_nonce        bytea       NOT NULL,
  key_ciphertext   bytea       NOT NULL,
  created_at       timestamptz NOT NULL DEFAULT now(),
  CHECK (c2d_sealed_ok(key_key_id, key_wrapped_key, key_nonce, key_ciphertext))
);

-- Who issues a certificate; chosen from its names when it is made.
ALTER TABLE certificates
  ADD COLUMN issuer_kind text NOT NULL DEFAULT 'acme' CHECK (issuer_kind IN ('acme', 'internal'));

-- HTTP-01 key authorizations being served at
-- /.well-known/acme-challenge/<token> (any certs replica answers).
CREATE TABLE acme_http_challenges (
  token              text        PRIMARY KEY CHECK (token ~ '^[A-Za-z0-9_-]{1,128}$'),
  key_authorization  text        NOT NULL,
  certificate_id     text        NOT NULL REFERENCES certificates (id) ON DELETE CASCADE,
  created_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX acme_http_challenges_certificate_idx ON acme_http_challenges (certificate_id);

-- The certificate served for a name is found by hostname at each TLS
-- handshake (through a cache).
CREATE INDEX certificates_hostnames_idx ON certificates USING gin (hostnames);
