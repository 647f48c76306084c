# sluice and mock-infer in one image.  Two stages: Debian 12 with the -dev
# packages builds a Release binary; debian:12-slim carries only the runtime
# libraries.  The image runs `sluice` as an unprivileged user:
#
#   docker build -t sluice .
#   docker run --rm sluice check /etc/sluice/pipelines/review-sentiment.yaml
#   docker run --rm --entrypoint mock-infer sluice --listen 0.0.0.0:8080
#
# docker-compose.yml builds it once and runs every role from it.

FROM debian:12 AS build
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        build-essential cmake ninja-build pkg-config \
        librdkafka-dev libhiredis-dev libpq-dev libcurl4-openssl-dev \
        libjansson-dev libyajl-dev libfyaml-dev libmicrohttpd-dev libcmocka-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# A compiler warning must not fail an image build; CI builds with -Werror.
RUN cmake -S . -B /build -G Ninja -DCMAKE_BUILD_TYPE=Release -DSLUICE_WERROR=OFF \
    && cmake --build /build --target sluice mock-infer \
    && install -D -m 0755 /build/sluice /out/usr/local/bin/sluice \
    && install -D -m 0755 /build/mock-infer /out/usr/local/bin/mock-infer \
    && install -d /out/etc/sluice/pipelines \
    && install -m 0644 pipelines/*.yaml /out/etc/sluice/pipelines/

FROM debian:12-slim
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        librdkafka1 libhiredis0.14 libpq5 libcurl4 libjansson4 libyajl2 libfyaml0 \
        libmicrohttpd12 ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin sluice
COPY --from=build /out/ /
USER sluice:sluice
# /metrics, /healthz and /readyz of `sluice run --listen 0.0.0.0:9464`.
EXPOSE 9464
# Liveness of a worker; mock-infer and one-shot roles override or disable
# it in docker-compose.yml.  SLUICE_HEALTH_PORT follows a changed --listen.
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD curl -fsS "http://127.0.0.1:${SLUICE_HEALTH_PORT:-9464}/healthz" || exit 1
ENTRYPOINT ["sluice"]
CMD ["help"]
