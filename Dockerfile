# syntax=docker/dockerfile:1
# Sentinel container images. `docker build .` gives the CPU image (the last stage) for linux/amd64 or
# linux/arm64; `docker build --target gpu .` gives the CUDA 12 image, linux/amd64 only. See docs/image.md.

# Base images: name:tag, or name:tag@sha256:<index digest> once scripts/pin-base-images.sh has pinned them
# (a digest wins over the tag, so re-run the script after changing a tag). Node 24 "Krypton" is the
# current LTS (the code also runs on Node 20); glibc, because onnxruntime-node ships no musl build. Bump
# these together with the k8s overlays' tags.
ARG NODE_IMAGE=node:24.21.0-trixie-slim
# onnxruntime-node 1.30's CUDA execution provider is built for CUDA 12 and cuDNN 9.
ARG CUDA_IMAGE=nvidia/cuda:12.9.1-cudnn-runtime-ubuntu24.04
# The commit the image is built from: `docker build --build-arg REVISION="$(git rev-parse HEAD)" .`
# It reaches `sentinel --version` and sentinel_build_info through dist/REVISION (no git at runtime) and
# the image's org.opencontainers.image.revision label; "unknown" when not given.
ARG REVISION=unknown
# The other OCI labels: VERSION follows package.json (a test holds them together); CREATED is the build
# time in RFC 3339 (`--build-arg CREATED="$(date -u +%Y-%m-%dT%H:%M:%SZ)"`) and SOURCE the repository
# URL, both empty when not given.
ARG VERSION=0.1.0
ARG CREATED=
ARG SOURCE=

FROM ${NODE_IMAGE} AS node

# Compiles TypeScript with the dev dependencies; only dist/ leaves this stage. JavaScript is the same on
# every architecture, so a multi-platform build compiles once, natively, on the builder's platform.
FROM --platform=$BUILDPLATFORM ${NODE_IMAGE} AS build
WORKDIR /src
ENV ONNXRUNTIME_NODE_INSTALL=skip
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build
# After the build, so a new revision does not invalidate the compile layer.
ARG REVISION
RUN printf '%s\n' "${REVISION}" > dist/REVISION

# Production dependencies only, on the target platform (emulated when cross-building), so npm and the
# pruning below see the target's OS and CPU. Install scripts are skipped (onnxruntime-node's is the only
# one and would fetch CUDA libraries); the CPU binaries ship inside the npm package.
FROM node AS prod-deps
WORKDIR /app
ENV ONNXRUNTIME_NODE_INSTALL=skip
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force
# onnxruntime-node unpacks ~288 MB for every OS; keep only this platform's binaries (~45 MB on
# linux/x64, ~25 MB on linux/arm64).
RUN keep="$(node -p 'process.platform + "/" + process.arch')" \
 && cd node_modules/onnxruntime-node/bin/napi-v6 \
 && for dir in */*; do [ "$dir" = "$keep" ] || rm -rf "$dir"; done \
 && for dir in *; do rmdir --ignore-fail-on-non-empty "$dir"; done \
 && { test -f "$keep/onnxruntime_binding.node" || { echo "onnxruntime-node ships no $keep binary — fix: build for linux/amd64 or linux/arm64" >&2; exit 1; }; }

# The same tree plus the CUDA 12 execution provider, fetched by onnxruntime-node's own install script.
FROM prod-deps AS prod-deps-gpu
# onnxruntime-node's CUDA provider exists for linux/x64 only.
ARG TARGETARCH
RUN [ "${TARGETARCH}" = amd64 ] || { echo "the GPU image is linux/amd64 only (onnxruntime-node has no CUDA build for ${TARGETARCH}) — fix: build --target gpu with --platform linux/amd64" >&2; exit 1; }
ARG ONNXRUNTIME_NODE_INSTALL=cuda12
# (ENV from the parent stage would win over this ARG, hence the explicit assignment.) The daemon
# offers cuda and cpu only, so the TensorRT provider library goes.
RUN ONNXRUNTIME_NODE_INSTALL="${ONNXRUNTIME_NODE_INSTALL}" node node_modules/onnxruntime-node/script/install \
 && cd node_modules/onnxruntime-node/bin/napi-v6/linux/x64 \
 && test -f libonnxruntime_providers_cuda.so \
 && rm -f libonnxruntime_providers_tensorrt.so

# Everything of the application except node_modules, shared by both runtime images.
FROM scratch AS app
COPY --from=build /src/dist /app/dist
COPY package.json /app/package.json
COPY config/sentinel.yaml /app/config/sentinel.yaml
COPY models/default.onnx models/default.json /app/models/

# GPU image: CUDA 12 + cuDNN 9 runtime with the Node binary from the official image.
FROM ${CUDA_IMAGE} AS gpu
COPY --from=node /usr/local/bin/node /usr/local/bin/node
RUN groupadd --system --gid 10001 sentinel \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin sentinel \
 && install -d -o 10001 -g 10001 -m 0750 /var/lib/sentinel
COPY --from=app /app /app
COPY --from=prod-deps-gpu /app/node_modules /app/node_modules
WORKDIR /app
ENV NODE_ENV=production
# A V8 heap cap that fits the DaemonSet's 512Mi limit (with onnxruntime and buffers beside it). Without
# one, V8 sizes the heap from the host's memory and lets garbage pile up under load (bench: ~190 MB RSS
# with 100k streams capped, up to ~295 MB uncapped). Raise it together with the memory limit.
ENV NODE_OPTIONS="--max-old-space-size=320"
# The alert outbox: the only place the daemon writes; everything else can be mounted read-only. /app is
# root-owned, so the config file's relative default cannot be written there; this variable, like every
# SENTINEL_* one, wins over the config file (to move the outbox, set it rather than outbox.path).
ENV SENTINEL_OUTBOX__PATH=/var/lib/sentinel/outbox.jsonl
VOLUME ["/var/lib/sentinel"]
USER 10001:10001
EXPOSE 9464
# No curl in these images: Node itself probes /healthz (port follows SENTINEL_HTTP_PORT).
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["node", "-e", "require('node:http').get({host:'127.0.0.1',port:process.env.SENTINEL_HTTP_PORT||9464,path:'/healthz',timeout:4000},r=>process.exit(r.statusCode===200?0:1)).on('error',()=>process.exit(1)).on('timeout',()=>process.exit(1))"]
ARG REVISION
ARG VERSION
ARG CREATED
ARG SOURCE
LABEL org.opencontainers.image.title="Sentinel (CUDA 12)" \
      org.opencontainers.image.description="Edge anomaly-detection daemon: MQTT telemetry scored by an ONNX model, alerts back to MQTT" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.licenses="Apache-2.0"
ENTRYPOINT ["node", "/app/dist/cli/main.js", "run"]

# CPU image (default target).
FROM node AS cpu
RUN groupadd --system --gid 10001 sentinel \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin sentinel \
 && install -d -o 10001 -g 10001 -m 0750 /var/lib/sentinel
COPY --from=app /app /app
COPY --from=prod-deps /app/node_modules /app/node_modules
WORKDIR /app
ENV NODE_ENV=production
ENV NODE_OPTIONS="--max-old-space-size=320"
ENV SENTINEL_OUTBOX__PATH=/var/lib/sentinel/outbox.jsonl
VOLUME ["/var/lib/sentinel"]
USER 10001:10001
EXPOSE 9464
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["node", "-e", "require('node:http').get({host:'127.0.0.1',port:process.env.SENTINEL_HTTP_PORT||9464,path:'/healthz',timeout:4000},r=>process.exit(r.statusCode===200?0:1)).on('error',()=>process.exit(1)).on('timeout',()=>process.exit(1))"]
ARG REVISION
ARG VERSION
ARG CREATED
ARG SOURCE
LABEL org.opencontainers.image.title="Sentinel" \
      org.opencontainers.image.description="Edge anomaly-detection daemon: MQTT telemetry scored by an ONNX model, alerts back to MQTT" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.licenses="Apache-2.0"
ENTRYPOINT ["node", "/app/dist/cli/main.js", "run"]
