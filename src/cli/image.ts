/** `hyperts image build [--force]`: build or refresh the default guest image. */
import { buildDefaultImage } from '../image/builder.js';

const usage = `usage: hyperts image build [--force]

Downloads Debian's cloud kernel, busybox-static and hyperv-daemons with apt-get and writes the default
guest image (kernel + initramfs) to $XDG_CACHE_HOME/hyperts/images/default (default ~/.cache/...).
  --force   rebuild even when the cached image matches its inputs
`;

export default async function (args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  if (sub === undefined || sub === 'help' || sub === '--help' || sub === '-h') {
    process.stdout.write(usage);
    return sub === undefined ? 2 : 0;
  }
  if (sub !== 'build') {
    process.stderr.write(`hyperts image: unknown subcommand '${sub}'\n${usage}`);
    return 2;
  }
  let force = false;
  for (const a of rest) {
    if (a === '--force' || a === '-f') force = true;
    else { process.stderr.write(`hyperts image build: unknown option '${a}'\n${usage}`); return 2; }
  }
  try {
    const r = await buildDefaultImage({ force });
    process.stdout.write(`kernel:  ${r.kernel}\ninitrd:  ${r.initrd}\ncmdline: ${r.cmdline}\n`);
    return 0;
  } catch (e) {
    process.stderr.write(`hyperts image build: ${e instanceof Error ? e.message : String(e)}\n`);
    return 1;
  }
}
