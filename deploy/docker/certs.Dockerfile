# c2d/certs: c2d-certs, which issues and renews certificates and serves
# them to the ingress.
# tools/images builds it (from the build's binaries, on the base it makes);
# deploy/compose.yaml and deploy/k8s run it. Configured by C2D_* variables
# (README.md, "Configuration").
ARG BASE=localhost/c2d/debian:bookworm
FROM ${BASE} AS check
COPY dist/bin/c2d-certs dist/bin/c2d-probe /out/
# Every shared library the binaries load is in the base, or the build fails.
RUN ! ldd /out/* | grep 'not found'

FROM ${BASE}
COPY --from=check /out/ /usr/local/bin/
USER c2d
ENV C2D_GRPC_ADDR=0.0.0.0:7000 \
    C2D_METRICS_ADDR=0.0.0.0:9100 \
    C2D_CERTS_HTTP_ADDR=0.0.0.0:8081
EXPOSE 7000 9100 8081
# Serving when its gRPC health service says so, at C2D_GRPC_ADDR.
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 CMD ["c2d-probe"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/c2d-certs"]
