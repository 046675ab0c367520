# c2d/ingress: Caddy, c2d's ingress: routes by DNS SRV records, certificates
# from the certs service at each handshake (tools/lib/caddy.sh).
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
  CMD test -f "${C2D_STATE:-/var/lib/c2d}/c2d-infra.ready" && curl -fsS -o /dev/null http://127.0.0.1:$C2D_INGRESS_ADMIN_PORT/config/
ENTRYPOINT ["/usr/local/bin/c2d-infra", "ingress"]
