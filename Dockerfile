# RedForge Tower — the daemon (`tower run`) in a container.
#
#   docker build -t redforge-tower:0.1.0 .
#   docker run --rm -p 8080:8080 -e TOWER_REPO=https://github.com/acme/fleet.git redforge-tower:0.1.0
#
# Three stages: `build` compiles TypeScript with the dev dependencies, `deps` installs the
# production dependencies alone, and the final image gets dist/ and those node_modules — no
# compiler, no test tools. The full stack (Tower, mosquitto, Redis, PostgreSQL, Prometheus,
# Grafana) is docker-compose.yml; Kubernetes manifests are in deploy/kubernetes/.
ARG NODE_IMAGE=node:20-bookworm-slim

# --- build: TypeScript -> dist/ ------------------------------------------------------------
FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json tsconfig.json ./
# --ignore-scripts: `prepare` would run tsc before the sources are here; it runs below.
RUN npm ci --no-audit --no-fund --ignore-scripts
COPY src src
COPY schemas schemas
RUN npm run build

# --- deps: production dependencies only -----------------------------------------------------
FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
# No install scripts: the only ones are optional native speed-ups of ssh2 (dockerode's SSH
# transport), which fall back to JavaScript, and a protobufjs version notice.
RUN npm ci --omit=dev --no-audit --no-fund --ignore-scripts && npm cache clean --force

# --- runtime ---------------------------------------------------------------------------------
FROM ${NODE_IMAGE}
# git (+ openssh-client for ssh:// and git@ remotes, ca-certificates for https) for Git
# sources; tini as PID 1, because Tower starts detached child processes (the traffic
# switches) that must be reaped, and it forwards SIGTERM so a rollout stops at a safe point.
# No mosquitto: the stack runs its own broker (MQTT_URL); without MQTT_URL a fleet that uses
# MQTT needs an embedded mosquitto, which this image does not have.
RUN apt-get update \
 && apt-get install -y --no-install-recommends git openssh-client ca-certificates tini \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY --from=deps /app/node_modules node_modules
COPY --from=build /app/dist dist
COPY package.json ./
COPY bin bin
COPY schemas schemas
COPY flows flows
# The state directory belongs to the node user of the base image (uid/gid 1000) — the same
# uid the official Node-RED image runs as, so the docker driver's userDirs fit both.
RUN ln -s /app/bin/tower.js /usr/local/bin/tower \
 && install -d -o 1000 -g 1000 -m 0750 /var/lib/tower
ENV NODE_ENV=production \
    TOWER_LISTEN=0.0.0.0:8080 \
    TOWER_STATE_DIR=/var/lib/tower
USER 1000:1000
EXPOSE 8080
# GET /healthz on the address TOWER_LISTEN names (0.0.0.0 and :: are asked on loopback).
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD node -e 'const l=process.env.TOWER_LISTEN||"127.0.0.1:8080";const i=l.lastIndexOf(":");let h=l.slice(0,i);if(h.startsWith("["))h=h.slice(1,-1);if(h==="0.0.0.0"||h==="::"||h==="")h="127.0.0.1";if(h.includes(":"))h="["+h+"]";fetch("http://"+h+":"+l.slice(i+1)+"/healthz",{signal:AbortSignal.timeout(4000)}).then(r=>process.exit(r.ok?0:1),()=>process.exit(1))'
ENTRYPOINT ["/usr/bin/tini", "--", "tower"]
CMD ["run"]
