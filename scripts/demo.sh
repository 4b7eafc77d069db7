#!/usr/bin/env bash
# The main job: set up, then boot the default Debian guest on the emulated processor with a new dynamic VHDX on
# the synthetic SCSI controller and a synthetic NIC on user-mode NAT (passt); run a few commands in it (a file
# system on the disk, DHCP, the Hyper-V drivers bound), and power it off. The serial console is shown on this
# terminal; afterwards Get-VHD shows what the guest wrote into the VHDX.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
node dist/src/cli/main.js new-vhd "$work/demo.vhdx" --size-bytes 256MB --dynamic
# The commands go in base64 (hyperts.run64) because the kernel command line cannot carry nested quotes.
cmds='uname -a; grep -m1 "model name" /proc/cpuinfo; ls /sys/bus/vmbus/drivers;
lsblk -o NAME,SIZE,TYPE /dev/sda; mkfs.ext4 -q /dev/sda && mount /dev/sda /mnt && echo "written by the guest" > /mnt/hello && sync && cat /mnt/hello && umount /mnt;
ip -4 -o addr show eth0; yes hyperts | head -c 4000000 | sha256sum; cat /proc/uptime'
node dist/src/cli/main.js run --processor emulated --vhd "$work/demo.vhdx" --nic \
  --append "hyperts.run64=$(printf '%s' "$cmds" | base64 -w0)"
node dist/src/cli/main.js get-vhd "$work/demo.vhdx"
node dist/src/cli/main.js test-vhd "$work/demo.vhdx"
