# c2d/registry: the Distribution registry with c2d's token service
# (c2d-registry-token), on 127.0.0.1:C2D_REGISTRY_PORT.
# Started by c2d-infra with the functions tools/c2d-up uses; its header
# lists the variables. On the host's network (deploy/compose.yaml).
ARG BASE=localhost/c2d/debian:bookworm
FROM ${BASE}
COPY dist/tools/lib/ /opt/c2d/tools/lib/
COPY docker/c2d-infra /usr/local/bin/
COPY dist/bin/c2d-registry-token /opt/c2d/tools/
RUN mkdir -p /var/lib/c2d && chown c2d: /var/lib/c2d
VOLUME /var/lib/c2d
USER c2d
HEALTHCHECK --interval=5s --timeout=5s --start-period=10s --retries=3 \
  CMD test -f "${C2D_STATE:-/var/lib/c2d}/c2d-infra.ready" && test "$(curl -s -o /dev/null -w %{http_code} http://127.0.0.1:$C2D_REGISTRY_PORT/v2/)" = 401
ENTRYPOINT ["/usr/local/bin/c2d-infra", "registry"]
