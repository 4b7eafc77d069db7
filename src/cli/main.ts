#!/usr/bin/env node
/** hyperts command line: dispatches to the subcommands. */
const usage = `usage: hyperts <command> [options]

commands:
  run            boot a transient VM with the serial console on this terminal
  image build    build (or refresh) the default guest image (--rootfs: also the Debian root disk)
  image path     print where the cached guest images are
  check          report whether this host can run the kvm and emulated backends
  serve          the management service (inventory, a worker per VM, REST API, web console)
  console-url    a one-time sign-in link to the web console
  new-vm, get-vm, set-vm, set-vmprocessor, start-vm, stop-vm, suspend-vm, resume-vm, restart-vm, save-vm, remove-vmsavedstate,
  remove-vm, connect-vm,
  get-vmintegrationservice, enable-vmintegrationservice, disable-vmintegrationservice,
  get-vmkvp, set-vmkvp, get-vmhost, get-vmevent,
  checkpoint-vm, get-vmsnapshot, restore-vmsnapshot, rename-vmsnapshot, remove-vmsnapshot, export-vm, import-vm,
  new-vmswitch, get-vmswitch, remove-vmswitch, add-vmnetworkadapter, get-vmnetworkadapter,
  remove-vmnetworkadapter, connect-vmnetworkadapter, disconnect-vmnetworkadapter
  add-vmharddiskdrive, get-vmharddiskdrive, remove-vmharddiskdrive, add-vmscsicontroller, set-vmdvddrive, get-vmdvddrive
                 manage VMs through the service, in Hyper-V's vocabulary (each takes --help)
  new-vhd, get-vhd, resize-vhd, merge-vhd, convert-vhd, optimize-vhd, test-vhd
                 virtual hard disk files (no service needed; it tells Get-VHD which VM uses a disk)
  completion bash   print the bash completion script
`;

async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  switch (cmd) {
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(usage);
      return 0;
    default: {
      const mod = commands[cmd];
      if (!mod) {
        process.stderr.write(`hyperts: unknown command '${cmd}'\n${usage}`);
        return 2;
      }
      const m = (await mod()) as { default: (args: string[]) => Promise<number> };
      return m.default(rest);
    }
  }
}

const STORAGE_COMMAND_NAMES = ['add-vmharddiskdrive', 'get-vmharddiskdrive', 'remove-vmharddiskdrive', 'add-vmscsicontroller', 'set-vmdvddrive', 'get-vmdvddrive',
  'new-vhd', 'get-vhd', 'resize-vhd', 'merge-vhd', 'convert-vhd', 'optimize-vhd', 'test-vhd'];

/** Subcommands load lazily so `hyperts check` does not pay for the emulator. */
const commands: Record<string, () => Promise<unknown>> = {
  run: () => import('./run.js'),
  image: () => import('./image.js'),
  check: () => import('./check.js'),
  serve: () => import('./serve.js'),
  'console-url': () => import('./console-url.js'),
  completion: () => import('./completion.js'),
  ...Object.fromEntries(['new-vm', 'get-vm', 'set-vm', 'set-vmprocessor', 'start-vm', 'stop-vm', 'suspend-vm', 'resume-vm', 'restart-vm', 'save-vm',
    'remove-vmsavedstate', 'remove-vm', 'connect-vm', 'get-vmintegrationservice', 'enable-vmintegrationservice', 'disable-vmintegrationservice', 'get-vmkvp', 'set-vmkvp',
    'get-vmhost', 'get-vmevent', 'checkpoint-vm', 'get-vmsnapshot', 'restore-vmsnapshot', 'rename-vmsnapshot', 'remove-vmsnapshot',
    'export-vm', 'import-vm'].map((c) => [c, () => import('./vm-commands.js').then((m) => ({ default: m.VM_COMMANDS[c] }))])),
  ...Object.fromEntries(['new-vmswitch', 'get-vmswitch', 'remove-vmswitch', 'add-vmnetworkadapter', 'get-vmnetworkadapter', 'remove-vmnetworkadapter',
    'connect-vmnetworkadapter', 'disconnect-vmnetworkadapter'].map((c) => [c, () => import('./net-commands.js').then((m) => ({ default: m.NET_COMMANDS[c] }))])),
  ...Object.fromEntries(STORAGE_COMMAND_NAMES.map((c) => [c, () => import('./storage-commands.js').then((m) => ({ default: m.STORAGE_COMMANDS[c] }))])),
};

main(process.argv.slice(2)).then(
  (code) => { process.exitCode = code; },
  (e: unknown) => { process.stderr.write(`hyperts: ${e instanceof Error ? e.message : String(e)}\n`); process.exitCode = 1; },
);
