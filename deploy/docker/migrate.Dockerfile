# c2d/migrate: c2d-migrate, which applies c2d's schema to C2D_DATABASE_URL
# and exits (deploy/compose.yaml runs it before any service; deploy/k8s as
# a Job), and c2d-admin for operators' tasks (tokens, rotate-master-key).
ARG BASE=localhost/c2d/debian:bookworm
FROM ${BASE} AS check
COPY dist/bin/c2d-migrate dist/bin/c2d-admin /out/
RUN ! ldd /out/* | grep 'not found'

FROM ${BASE}
COPY --from=check /out/ /usr/local/bin/
USER c2d
CMD ["/usr/local/bin/c2d-migrate"]
