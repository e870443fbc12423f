#!/usr/bin/env bash
# Installs the Debian packages Tower's tests need, when they are missing.
# Used by .ci/run and by `npm test` (pretest); safe to run again: installed packages are skipped.
set -euo pipefail

# git: real repositories. mosquitto: the MQTT broker (tests, and Tower's embedded broker).
# docker.io + busybox-static: a private Docker engine and a tiny test image for the docker driver.
# nginx: the nginx traffic switch. redis-server, postgresql: the daemon's lease, shared
# context and state store. chromium: the status page tested in a real browser.
PACKAGES=(git mosquitto docker.io busybox-static nginx redis-server postgresql chromium)

missing=()
for pkg in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
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
