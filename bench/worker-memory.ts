/**
 * What a VM worker holds in memory beyond its guest's RAM (issue 17: goal <= 100 MiB for a booted 512 MiB guest),
 * with a breakdown cheap enough to take at the end of every benchmark boot.
 *
 * The resident part of guest RAM comes from mincore(2) on the RAM buffer (through koffi): it counts exactly the
 * pages of that buffer, wherever the allocator put it. /proc/self/smaps would need us to guess which anonymous
 * mapping is the buffer (V8 and glibc may merge it with neighbours), so it is only the fallback when koffi
 * cannot load (then the largest anonymous mapping at least the RAM's size is taken as the buffer).
 */
import { readFileSync } from 'node:fs';
import { getHeapSpaceStatistics, getHeapStatistics } from 'node:v8';
import { tryNativeLibc } from '../src/host/native-libc.js';

const MiB = 1024 * 1024;
const PAGE = 4096;

export interface WorkerMemory {
  /** Resident set of the process (VmRSS), and its peak (VmHWM). */
  rss: number;
  rssPeak: number;
  /** RssAnon / RssFile (the node binary and shared libraries) / RssShmem. */
  rssAnon: number;
  rssFile: number;
  rssShmem: number;
  /** Resident bytes of the guest RAM buffer, and how they were measured. */
  guestResident: number;
  guestMethod: 'mincore' | 'smaps' | 'none';
  guestSize: number;
  /** rss - guestResident: the goal's measure. */
  overhead: number;
  heapUsed: number;
  heapTotal: number;
  /** Committed bytes per V8 heap space (new_space, old_space, code_space, large_object_space...). */
  spaces: Record<string, { committed: number; used: number }>;
  /** V8's own malloc'd memory (zones, compiler) and the current peak of it. */
  v8Malloced: number;
  v8MallocedPeak: number;
  /** process.memoryUsage(): memory of ArrayBuffers (allocated size, not residency) other than guest RAM, and all external. */
  arrayBuffersOther: number;
  external: number;
}

function statusField(status: string, name: string): number {
  const m = new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status);
  return m ? Number(m[1]) * 1024 : NaN;
}

/** Resident bytes of `buf` by mincore(2) on the pages it spans, or null when koffi/libc are not available. */
function residentByMincore(buf: Uint8Array): number | null {
  const native = tryNativeLibc();
  if (native === null) return null;
  const { koffi, lib } = native;
  const mincore = lib.func('int mincore(uintptr_t addr, size_t len, _Out_ uint8_t *vec)');
  const base = koffi.address(buf);
  const start = base & ~BigInt(PAGE - 1);
  const end = (base + BigInt(buf.byteLength) + BigInt(PAGE - 1)) & ~BigInt(PAGE - 1);
  const pages = Number((end - start) / BigInt(PAGE));
  const vec = new Uint8Array(pages);
  if (mincore(start, end - start, vec) !== 0) return null;
  let n = 0;
  for (let i = 0; i < pages; i++) n += vec[i] & 1;
  return n * PAGE;
}

/** Fallback: Rss of the largest anonymous mapping in /proc/self/smaps that is at least `size` bytes long. */
function residentBySmaps(size: number): number | null {
  let text: string;
  try { text = readFileSync('/proc/self/smaps', 'utf8'); } catch { return null; }
  let best: { len: number; rss: number } | null = null;
  let cur: { len: number; rss: number; anon: boolean } | null = null;
  for (const line of text.split('\n')) {
    const head = /^([0-9a-f]+)-([0-9a-f]+) \S+ \S+ \S+ \d+\s*(.*)$/.exec(line);
    if (head) {
      cur = { len: parseInt(head[2], 16) - parseInt(head[1], 16), rss: 0, anon: head[3] === '' };
      continue;
    }
    const rss = /^Rss:\s+(\d+) kB/.exec(line);
    if (rss && cur) {
      cur.rss = Number(rss[1]) * 1024;
      if (cur.anon && cur.len >= size && (best === null || cur.len > best.len)) best = { len: cur.len, rss: cur.rss };
    }
  }
  return best?.rss ?? null;
}

/** Measures this process now; `guestRam` is the guest RAM buffer (Partition.memory.bytes). */
export function measureWorkerMemory(guestRam: Uint8Array): WorkerMemory {
  const status = readFileSync('/proc/self/status', 'utf8');
  let guestResident = residentByMincore(guestRam);
  let guestMethod: WorkerMemory['guestMethod'] = 'mincore';
  if (guestResident === null) { guestResident = residentBySmaps(guestRam.byteLength); guestMethod = 'smaps'; }
  if (guestResident === null) { guestResident = 0; guestMethod = 'none'; }
  const rss = statusField(status, 'VmRSS');
  const hs = getHeapStatistics();
  const spaces: WorkerMemory['spaces'] = {};
  for (const s of getHeapSpaceStatistics()) spaces[s.space_name] = { committed: s.physical_space_size, used: s.space_used_size };
  const mu = process.memoryUsage();
  return {
    rss, rssPeak: statusField(status, 'VmHWM'),
    rssAnon: statusField(status, 'RssAnon'), rssFile: statusField(status, 'RssFile'), rssShmem: statusField(status, 'RssShmem'),
    guestResident, guestMethod, guestSize: guestRam.byteLength,
    overhead: rss - guestResident,
    heapUsed: hs.used_heap_size, heapTotal: hs.total_heap_size,
    spaces,
    v8Malloced: hs.malloced_memory, v8MallocedPeak: hs.peak_malloced_memory,
    arrayBuffersOther: mu.arrayBuffers - guestRam.byteLength,
    external: mu.external,
  };
}

/** The overhead goal of issue 17. */
export const OVERHEAD_GOAL = 100 * MiB;

const mb = (n: number): string => `${(n / MiB).toFixed(1)} MiB`;

/** Printable lines: totals, the goal line, then the breakdown. */
export function formatWorkerMemory(m: WorkerMemory): string[] {
  const sp = (name: string): string => (m.spaces[name] ? mb(m.spaces[name].committed) : 'n/a');
  const heapSpaces = Object.values(m.spaces).reduce((s, x) => s + x.committed, 0);
  return [
    `worker memory    : RSS ${mb(m.rss)} (peak ${mb(m.rssPeak)}), guest RAM resident ${mb(m.guestResident)} of ${mb(m.guestSize)} (${m.guestMethod}), beyond guest RAM ${mb(m.overhead)}`,
    `memory goal      : beyond guest RAM <= ${mb(OVERHEAD_GOAL)}: ${m.overhead <= OVERHEAD_GOAL ? 'met' : 'NOT met'}`,
    `  RSS kinds      : anon ${mb(m.rssAnon)}, file ${mb(m.rssFile)} (node binary, libraries), shmem ${mb(m.rssShmem)}`,
    `  V8 heap        : used ${mb(m.heapUsed)} of ${mb(m.heapTotal)} committed; new ${sp('new_space')}, old ${sp('old_space')}, code ${sp('code_space')}, ` +
      `large objects ${sp('large_object_space')}, large code ${sp('code_large_object_space')}, maps ${sp('map_space')}`,
    `  outside heap   : V8 malloc ${mb(m.v8Malloced)} (peak ${mb(m.v8MallocedPeak)}), other ArrayBuffers ${mb(m.arrayBuffersOther)} (allocated), ` +
      `other native anon (allocator arenas of V8's threads, stacks) ~${mb(m.overhead - m.rssFile - m.rssShmem - heapSpaces - m.v8Malloced - Math.max(0, m.arrayBuffersOther))}`,
  ];
}
