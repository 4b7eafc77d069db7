/**
 * Guest RAM for the emulated processor inside one WebAssembly.Memory, after one area per vCPU (state page and
 * TLB, see state.ts), so translated code reaches registers, the TLB and RAM with plain loads. A memory is
 * limited to 65536 pages (4 GiB) and committed lazily; a guest whose RAM does not fit gets an ordinary buffer
 * (its translated code then reaches memory through JS imports).
 */
import { GuestMemory } from '../../../platform/memory.js';
import { AREA_SIZE } from './state.js';
import { jitEngine } from '../jit.js';

const PAGE = 65536;
const MAX_PAGES = 65536;

export function allocateEmulatedMemory(size: number, cpus: number): GuestMemory {
  const areas = Math.max(1, cpus);
  const ramBase = areas * AREA_SIZE;
  const pages = Math.ceil((ramBase + size) / PAGE);
  // Only the wasm translator reaches RAM from linear memory; the other engines keep the plain buffer.
  if (jitEngine === 'wasm' && pages <= MAX_PAGES && process.env.HYPERTS_WASM_RAM !== 'off') {
    try {
      const memory = new WebAssembly.Memory({ initial: pages, maximum: pages });
      return new GuestMemory(size, memory.buffer, ramBase, { memory, ramBase, areaSize: AREA_SIZE, areas });
    } catch { /* the host refused the reservation: fall back to a plain buffer */ }
  }
  return new GuestMemory(size);
}
