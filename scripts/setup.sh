#!/usr/bin/env bash
# Installs everything hyperts needs on a Debian host: Debian packages (.ci/packages.txt), npm packages,
# the TypeScript build, the default guest image and (as root) the Debian root disk (built from Debian packages, cached).
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
if [ -f .ci/packages.txt ]; then
  while read -r pkg; do
    case "$pkg" in ''|'#'*) continue ;; esac
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
  done < .ci/packages.txt
fi
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ]; then
    echo "setup: installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "setup: missing Debian packages: ${missing[*]} (run: sudo apt-get install ${missing[*]})" >&2
    exit 1
  fi
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
npx tsc -p .
node dist/src/cli/main.js image build
# The generic-kernel image: unenlightened guests with the legacy network adapter (tulip), used by the IDE boot test.
node dist/src/cli/main.js image build --generic
# The Debian root disk (boot tests of SCSI roots): debootstrap needs root.
if [ "$(id -u)" -eq 0 ]; then
  node dist/src/cli/main.js image build --rootfs
else
  echo "setup: skipping the Debian root disk (needs root): sudo node dist/src/cli/main.js image build --rootfs" >&2
fi
