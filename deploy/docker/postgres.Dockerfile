# c2d/postgres: PostgreSQL 15, c2d's control-plane database (a durable cluster in
# the volume at /var/lib/c2d), on 127.0.0.1:C2D_PG_PORT.
# Started by c2d-infra with the functions tools/c2d-up uses; its header
# lists the variables. On the host's network (deploy/compose.yaml).
ARG BASE=localhost/c2d/debian:bookworm
FROM ${BASE}
COPY dist/tools/lib/ /opt/c2d/tools/lib/
COPY docker/c2d-infra /usr/local/bin/
RUN mkdir -p /var/lib/c2d && chown postgres: /var/lib/c2d
VOLUME /var/lib/c2d
USER postgres
HEALTHCHECK --interval=5s --timeout=5s --start-period=10s --retries=3 \
  CMD test -f "${C2D_STATE:-/var/lib/c2d}/c2d-infra.ready" && pg_isready -q -h 127.0.0.1 -p "$C2D_PG_PORT"
ENTRYPOINT ["/usr/local/bin/c2d-infra", "postgres"]
