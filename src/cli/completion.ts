/** `hyperts completion bash`: prints a bash completion script (commands, options, VM names, service names). */
const OPTIONS: Record<string, string> = {
  'new-vm': '--memory --cpus --processor --enlightened --kernel --initrd --cmdline --com1 --notes --disable-ic --new-vhd-path --new-vhd-size-bytes --vhd-path --json',
  'get-vm': '--json --names',
  'set-vmprocessor': '--count --json',
  'set-vm': '--memory --cpus --processor --enlightened --kernel --initrd --cmdline --com1 --notes --checkpoint-type --new-name --json',
  'start-vm': '--json', 'suspend-vm': '--json', 'resume-vm': '--json', 'restart-vm': '--json', 'save-vm': '--json',
  'remove-vmsavedstate': '--json',
  'stop-vm': '--turn-off --force --no-wait --timeout --json',
  'remove-vm': '', 'connect-vm': '', 'get-vmhost': '--json', 'get-vmevent': '--limit --json',
  'get-vmintegrationservice': '--json', 'enable-vmintegrationservice': '--json', 'disable-vmintegrationservice': '--json',
  'get-vmkvp': '--json', 'set-vmkvp': '--remove',
  'new-vmswitch': '--switch-type --net-adapter-name --nat-forward --notes --json', 'get-vmswitch': '--json', 'remove-vmswitch': '',
  'add-vmnetworkadapter': '--name --switch-name --static-mac-address --is-legacy --json', 'get-vmnetworkadapter': '--json',
  'remove-vmnetworkadapter': '', 'connect-vmnetworkadapter': '--switch-name --json', 'disconnect-vmnetworkadapter': '--json',
  'checkpoint-vm': '--snapshot-name --json', 'get-vmsnapshot': '--json', 'restore-vmsnapshot': '--json', 'rename-vmsnapshot': '--json', 'remove-vmsnapshot': '',
  'add-vmharddiskdrive': '--path --controller-type --controller-number --controller-location --json', 'get-vmharddiskdrive': '--json',
  'remove-vmharddiskdrive': '--controller-type --controller-number --controller-location', 'add-vmscsicontroller': '',
  'set-vmdvddrive': '--path --controller-number --controller-location --json', 'get-vmdvddrive': '--json',
  'new-vhd': '--size-bytes --dynamic --fixed --parent-path --block-size-bytes --logical-sector-size-bytes --physical-sector-size-bytes --json',
  'get-vhd': '--json', 'resize-vhd': '--size-bytes --json', 'merge-vhd': '--destination-path --json', 'convert-vhd': '--vhd-type --json',
  'optimize-vhd': '--json', 'test-vhd': '--json',
  serve: '--data-dir --listen --tls-cert --tls-key --insecure-http --allowed-host --token-file --path-root --no-isolation --quiet',
  run: '--processor --kernel --initrd --append --memory --cpus --enlightenments --gdb --clock --quiet --vhd --dvd',
  check: '--json --no-speed --device', image: 'build path --force --rootfs --mirror', completion: 'bash', 'console-url': '--url --data-dir --token-file',
};
const CONNECTION = '--data-dir --url --token-file';
const TAKES_VM = ['get-vm', 'set-vm', 'set-vmprocessor', 'start-vm', 'stop-vm', 'suspend-vm', 'resume-vm', 'restart-vm', 'save-vm', 'remove-vmsavedstate', 'remove-vm', 'connect-vm',
  'get-vmintegrationservice', 'enable-vmintegrationservice', 'disable-vmintegrationservice', 'get-vmkvp', 'set-vmkvp', 'get-vmevent',
  'checkpoint-vm', 'get-vmsnapshot', 'restore-vmsnapshot', 'rename-vmsnapshot', 'remove-vmsnapshot',
  'add-vmharddiskdrive', 'get-vmharddiskdrive', 'remove-vmharddiskdrive', 'add-vmscsicontroller', 'set-vmdvddrive', 'get-vmdvddrive'];
/** Commands whose first argument is a file. */
const TAKES_FILE = ['new-vhd', 'get-vhd', 'resize-vhd', 'merge-vhd', 'convert-vhd', 'optimize-vhd', 'test-vhd'];
const VALUES: Record<string, string> = {
  '--controller-type': 'SCSI IDE', '--vhd-type': 'fixed dynamic', '--logical-sector-size-bytes': '512 4096', '--physical-sector-size-bytes': '512 4096',
  '--processor': 'auto kvm emulated', '--enlightened': 'on off', '--enlightenments': 'on off', '--com1': 'console none', '--clock': 'realtime warp',
};

export function bashCompletion(): string {
  const cases = Object.entries(OPTIONS).map(([c, o]) => `    ${c}) opts="${o}${c.includes('vm') || c.includes('vhd') ? ` ${CONNECTION}` : ''}" ;;`).join('\n');
  const values = Object.entries(VALUES).map(([o, v]) => `    ${o}) COMPREPLY=($(compgen -W "${v}" -- "$cur")); return ;;`).join('\n');
  return `# bash completion for hyperts: source <(hyperts completion bash)
_hyperts() {
  local cur prev cmd opts
  cur="\${COMP_WORDS[COMP_CWORD]}"
  prev="\${COMP_WORDS[COMP_CWORD-1]}"
  if [ "$COMP_CWORD" -eq 1 ]; then
    COMPREPLY=($(compgen -W "${Object.keys(OPTIONS).join(' ')} help" -- "$cur"))
    return
  fi
  cmd="\${COMP_WORDS[1]}"
  case "$prev" in
${values}
    --kernel|--initrd|--data-dir|--token-file|--tls-cert|--tls-key|--path|--vhd-path|--new-vhd-path|--parent-path|--destination-path) COMPREPLY=($(compgen -f -- "$cur")); return ;;
  esac
  case "$cmd" in
${cases}
    *) opts="" ;;
  esac
  if [[ "$cur" == --* ]]; then
    COMPREPLY=($(compgen -W "$opts" -- "$cur"))
    return
  fi
  case "$cmd" in
    enable-vmintegrationservice|disable-vmintegrationservice)
      if [ "$COMP_CWORD" -ge 3 ]; then
        COMPREPLY=($(compgen -W "Heartbeat Shutdown timesync kvp VSS" -- "$cur"))
        return
      fi ;;
  esac
  case " ${TAKES_FILE.join(' ')} " in
    *" $cmd "*) COMPREPLY=($(compgen -f -- "$cur")); return ;;
  esac
  case " ${TAKES_VM.join(' ')} " in
    *" $cmd "*)
      local names
      names=$(hyperts get-vm --names 2>/dev/null)
      COMPREPLY=($(compgen -W "$names" -- "$cur")) ;;
  esac
}
complete -F _hyperts hyperts
`;
}

export default async function completion(args: string[]): Promise<number> {
  if (args[0] !== 'bash') {
    process.stderr.write(`usage: hyperts completion bash   (then: source <(hyperts completion bash), or save it under /etc/bash_completion.d/hyperts)\n`);
    return args.length ? 2 : 0;
  }
  process.stdout.write(bashCompletion());
  return 0;
}
