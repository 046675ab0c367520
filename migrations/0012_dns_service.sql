-- The DNS service (DESIGN point 12) owns every record c2d publishes,
-- including the local ingress's upstream table: SRV records
-- "<hostname>.<ingress zone>" that the ingress Caddy reads (tools/lib/caddy.sh).
ALTER TABLE dns_records DROP CONSTRAINT dns_records_type_check;
ALTER TABLE dns_records
  ADD CONSTRAINT dns_records_type_check CHECK (type IN ('a', 'aaaa', 'cname', 'txt', 'srv'));
-- 'ingress': the local ingress's upstream table (local provider only).
ALTER TABLE dns_zones DROP CONSTRAINT dns_zones_kind_check;
ALTER TABLE dns_zones
  ADD CONSTRAINT dns_zones_kind_check CHECK (kind IN ('public', 'internal', 'ingress'));
-- The sync job and the drift sweep find a zone's records by zone.
CREATE INDEX dns_records_zone_idx ON dns_records (zone_id, name, type);
-- An instance's address on its project's private network (no port), for
-- "<service>.<project>.internal.<base>"; NULL until the provider knows it.
ALTER TABLE instances ADD COLUMN private_address text;
