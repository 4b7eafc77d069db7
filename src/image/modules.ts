/**
 * Kernel modules for the initramfs. Debian's kernel package ships no modules.dep (depmod runs at install),
 * so dependencies are read from each module's `.modinfo` section (`depends=`), the same data depmod uses.
 */
import { readFileSync, readdirSync, existsSync } from 'node:fs';
import { join, relative, basename } from 'node:path';
import { parseElf, sectionData } from '../firmware/elf.js';

/**
 * The modules the guest init loads, in the order it tries them (dependencies come first automatically).
 * The one place to change what the guest gets: VMBus + integration services, storage, network, root fs.
 */
export const GUEST_MODULES: readonly string[] = [
  'hv_vmbus', 'hv_utils', 'hv_storvsc', 'hv_netvsc', 'scsi_mod', 'sd_mod', 'libata', 'ata_piix', 'ext4',
  // The Gen 1 IDE controller's DVD drive (ATAPI, through sr_mod and cdrom) and the ISO 9660 file system.
  'sr_mod', 'isofs',
  // A RAM block device (file systems to freeze: hv_vss_daemon skips loop devices) and a dummy NIC (an IPv4
  // address for hv_kvp_daemon to report, which skips loopback) until the synthetic disk and NIC exist.
  'brd', 'dummy',
];

/**
 * Extra modules of the generic-kernel image: drivers for emulated (non-Hyper-V) hardware that Debian's cloud
 * kernel does not build (the legacy network adapter's DEC 21140), and what the cloud kernel has built in
 * but the generic one as a module and loads only on demand (ext4's crc32c, with no request_module helper
 * in the initramfs).
 */
export const GENERIC_KERNEL_MODULES: readonly string[] = ['tulip', 'crc32c_generic'];

/** depmod's canonical module name: file base name without .ko, dashes as underscores. */
export function moduleName(file: string): string {
  return basename(file).replace(/\.ko(\.(xz|gz|zst))?$/, '').replace(/-/g, '_');
}

/** Key/value pairs of a module's .modinfo section (repeated keys keep every value). */
export function readModinfo(ko: Uint8Array): Map<string, string[]> {
  const sec = parseElf(ko).sections.find((s) => s.name === '.modinfo');
  const out = new Map<string, string[]>();
  if (!sec) return out;
  const text = Buffer.from(sectionData(ko, sec)).toString('utf8');
  for (const item of text.split('\0')) {
    const eq = item.indexOf('=');
    if (eq <= 0) continue;
    const k = item.slice(0, eq);
    const list = out.get(k) ?? [];
    list.push(item.slice(eq + 1));
    out.set(k, list);
  }
  return out;
}

export interface ModuleTree {
  /** /lib/modules/<version> directory. */
  root: string;
  version: string;
  /** Module name -> path relative to root (e.g. kernel/drivers/hv/hv_vmbus.ko). */
  files: Map<string, string>;
  /** Names of modules compiled into the kernel (modules.builtin). */
  builtin: Set<string>;
}

export function scanModuleTree(root: string): ModuleTree {
  const files = new Map<string, string>();
  const walk = (dir: string): void => {
    for (const ent of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, ent.name);
      if (ent.isDirectory()) walk(p);
      else if (/\.ko(\.(xz|gz|zst))?$/.test(ent.name)) files.set(moduleName(ent.name), relative(root, p));
    }
  };
  if (!existsSync(join(root, 'kernel'))) throw new Error(`no kernel modules under ${root}`);
  walk(join(root, 'kernel'));
  const builtin = new Set<string>();
  const bf = join(root, 'modules.builtin');
  if (existsSync(bf)) for (const l of readFileSync(bf, 'utf8').split('\n')) if (l.trim()) builtin.add(moduleName(l.trim()));
  return { root, version: basename(root), files, builtin };
}

export interface ResolvedModules {
  /** Loadable modules in load order (each after all of its dependencies). */
  order: string[];
  /** Module name -> its direct hard dependencies. */
  deps: Map<string, string[]>;
  /** Requested names that are built into the kernel (nothing to load). */
  builtin: string[];
}

/** Resolve `wanted` and their transitive `depends=` into a load order. Unknown names are an error. */
export function resolveModules(tree: ModuleTree, wanted: readonly string[], read: (rel: string) => Uint8Array = (rel) => readFileSync(join(tree.root, rel))): ResolvedModules {
  const deps = new Map<string, string[]>();
  const order: string[] = [];
  const builtin: string[] = [];
  const state = new Map<string, 'visiting' | 'done'>();
  const visit = (name: string, from: string | null): void => {
    const n = name.replace(/-/g, '_');
    const st = state.get(n);
    if (st === 'done') return;
    if (st === 'visiting') throw new Error(`module dependency cycle at ${n}`);
    const rel = tree.files.get(n);
    if (!rel) {
      if (tree.builtin.has(n)) { state.set(n, 'done'); if (from === null) builtin.push(n); return; }
      throw new Error(`kernel module '${n}'${from ? ` (needed by ${from})` : ''} is neither in ${tree.root} nor built in`);
    }
    state.set(n, 'visiting');
    const info = readModinfo(read(rel));
    const d = (info.get('depends') ?? []).flatMap((s) => s.split(',')).map((s) => s.trim()).filter(Boolean).map((s) => s.replace(/-/g, '_'));
    deps.set(n, d);
    for (const x of d) visit(x, n);
    state.set(n, 'done');
    order.push(n);
  };
  for (const w of wanted) visit(w, null);
  return { order, deps, builtin };
}

/**
 * modules.dep text in depmod's format ("path: dep-path dep-path..." with transitive deps, nearest first),
 * restricted to the resolved modules, so busybox modprobe works inside the guest.
 */
export function modulesDep(tree: ModuleTree, r: ResolvedModules): string {
  const lines: string[] = [];
  for (const n of r.order) {
    const all: string[] = [];
    const seen = new Set<string>();
    const add = (m: string): void => {
      for (const d of r.deps.get(m) ?? []) {
        if (!r.deps.has(d) || seen.has(d)) continue;
        seen.add(d);
        all.push(d);
      }
      for (const d of r.deps.get(m) ?? []) if (r.deps.has(d)) add(d);
    };
    add(n);
    lines.push(`${tree.files.get(n)}:${all.map((d) => ' ' + tree.files.get(d)).join('')}`);
  }
  return lines.join('\n') + '\n';
}
