# c2d/builder: c2d-builder, which builds images from tenants' repositories
# on the build engine.
# tools/images builds it (from the build's binaries, on the base it makes);
# deploy/compose.yaml and deploy/k8s run it. Configured by C2D_* variables
# (README.md, "Configuration").
ARG BASE=localhost/c2d/debian:bookworm
FROM ${BASE} AS check
COPY dist/bin/c2d-builder dist/bin/c2d-probe /out/
# Every shared library the binaries load is in the base, or the build fails.
RUN ! ldd /out/* | grep 'not found'

FROM ${BASE}
COPY --from=check /out/ /usr/local/bin/
# Its scratch space for clones and build contexts (a volume in compose).
RUN mkdir -p /var/lib/c2d/builds && chown c2d:c2d /var/lib/c2d/builds
USER c2d
ENV C2D_GRPC_ADDR=0.0.0.0:7000 \
    C2D_METRICS_ADDR=0.0.0.0:9100 \
    C2D_BUILD_WORK_DIR=/var/lib/c2d/builds
EXPOSE 7000 9100
# Serving when its gRPC health service says so, at C2D_GRPC_ADDR.
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 CMD ["c2d-probe"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/c2d-builder"]
