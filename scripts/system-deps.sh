#!/usr/bin/env bash
# Installs the Debian packages Tower needs, when they are missing.
#   scripts/system-deps.sh           everything the tests need (.ci/run, npm test)
#   scripts/system-deps.sh runtime   what `tower run` needs on embedded defaults (npm start)
# Safe to run again: installed packages are skipped.
set -euo pipefail

# git: real repositories. mosquitto: the MQTT broker (tests, and Tower's embedded broker).
# docker.io + busybox-static: a private Docker engine and a tiny test image for the docker driver.
# nginx: the nginx traffic switch. prometheus: promtool checks deploy/. redis-server, postgresql: the daemon's lease, shared
# context and state store. chromium: the status page tested in a real browser. kubernetes-client (below): kubectl.
PACKAGES=(git mosquitto docker.io docker-compose busybox-static nginx redis-server postgresql chromium prometheus)
if [ "${1:-}" = runtime ]; then
  # git for Git sources; mosquitto for the embedded broker of fleets that use MQTT;
  # redis-server for the embedded Redis of instances with context: shared.
  PACKAGES=(git mosquitto redis-server)
fi

missing=()
for pkg in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
# kubectl (Debian kubernetes-client): checks the tests' stand-in Kubernetes API server from the outside.
# Any kubectl will do; where one is installed from elsewhere, Debian's would collide with its /usr/bin/kubectl.
if [ "${1:-}" != runtime ] && ! command -v kubectl >/dev/null 2>&1; then missing+=(kubernetes-client); fi
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO=sudo; else
    echo "system-deps: missing Debian packages: ${missing[*]}; install them as root: apt-get install ${missing[*]}" >&2
    exit 1
  fi
else
  SUDO=
fi
echo "system-deps: installing ${missing[*]}" >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
