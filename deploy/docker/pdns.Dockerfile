# c2d/pdns: PowerDNS Authoritative with its HTTP API, the zones' store and
# the ingress's routing table (tools/lib/pdns.sh).
# Started by c2d-infra with the functions tools/c2d-up uses; its header
# lists the variables. On the host's network (deploy/compose.yaml).
ARG BASE=localhost/c2d/debian:bookworm
FROM ${BASE}
COPY dist/tools/lib/ /opt/c2d/tools/lib/
COPY docker/c2d-infra /usr/local/bin/
RUN mkdir -p /var/lib/c2d && chown c2d: /var/lib/c2d
VOLUME /var/lib/c2d
USER c2d
HEALTHCHECK --interval=5s --timeout=5s --start-period=10s --retries=3 \
  CMD test -f "${C2D_STATE:-/var/lib/c2d}/c2d-infra.ready" && curl -fsS -o /dev/null -H "X-API-Key: $C2D_PDNS_API_KEY" http://127.0.0.1:$C2D_PDNS_API_PORT/api/v1/servers/localhost
ENTRYPOINT ["/usr/local/bin/c2d-infra", "pdns"]
