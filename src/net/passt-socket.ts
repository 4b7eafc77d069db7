/**
 * The socket pair between us and passt, with a deep send buffer on passt's end. passt started by QEMU (`-s`)
 * raises its socket's SO_SNDBUF itself (to net.core.wmem_max); handed a descriptor with `--fd` it does not, and
 * the default (~208 KiB) is all it can write while we hold back: bookworm's passt drops what does not fit and
 * then resends its whole window. So we make the pair ourselves (koffi: Node has no socketpair) and set the
 * buffer before passt gets it. Null when that is unavailable: the caller falls back to Node's own pipe.
 */
import { createRequire } from 'node:module';
import { closeSync } from 'node:fs';

const AF_UNIX = 1, SOCK_STREAM = 1, SOCK_CLOEXEC = 0x80000;
const SOL_SOCKET = 1, SO_SNDBUF = 7;

interface Libc {
  socketpair(domain: number, type: number, protocol: number, sv: Int32Array): number;
  setsockopt(fd: number, level: number, name: number, value: Int32Array, len: number): number;
}

let libc: Libc | null | undefined;
function load(): Libc | null {
  if (libc !== undefined) return libc;
  try {
    const koffi = createRequire(import.meta.url)('koffi') as typeof import('koffi');
    const lib = koffi.load('libc.so.6');
    const socketpair = lib.func('int socketpair(int domain, int type, int protocol, void *sv)');
    const setsockopt = lib.func('int setsockopt(int fd, int level, int name, void *value, unsigned int len)');
    libc = {
      socketpair: (d, t, p, sv) => socketpair(d, t, p, sv) as number,
      setsockopt: (fd, l, n, v, len) => setsockopt(fd, l, n, v, len) as number,
    };
  } catch {
    libc = null;
  }
  return libc;
}

/**
 * A connected AF_UNIX stream pair, both ends close-on-exec (the child's end becomes its fd 3 through spawn's
 * stdio, which clears that flag). `childSendBuffer` is asked for on the child's end (the kernel caps it at
 * net.core.wmem_max). Null when koffi or the calls are unavailable.
 */
export function passtSocketPair(childSendBuffer: number): { parent: number; child: number } | null {
  const c = load();
  if (!c) return null;
  const sv = new Int32Array(2);
  if (c.socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) !== 0) return null;
  // Best effort: a smaller buffer still works, only with more drops in passt under load.
  c.setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, Int32Array.of(childSendBuffer), 4);
  return { parent: sv[0], child: sv[1] };
}

export function closeFd(fd: number): void {
  try { closeSync(fd); } catch { /* already closed */ }
}
