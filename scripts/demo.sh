#!/usr/bin/env bash
# The main job: set up, then boot the default Debian guest on the emulated processor, run a few commands in
# it, and power it off. The serial console is shown on this terminal.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# The commands go in base64 (hyperts.run64) because the kernel command line cannot carry nested quotes.
cmds='uname -a; grep -m2 -E "^(model name|flags)" /proc/cpuinfo; ls /sys/firmware/acpi/tables; yes hyperts | head -c 4000000 | sha256sum; cat /proc/uptime'
exec node dist/src/cli/main.js run --processor emulated --clock icount \
  --append "hyperts.run64=$(printf '%s' "$cmds" | base64 -w0)"
