/**
 * libc loaded once per thread through koffi, for the few host calls Node does not offer (KVM ioctls, OFD locks,
 * SCM_RIGHTS, poll on a TAP device). koffi is CommonJS with a native addon: `require` keeps it out of the ESM
 * graph until a caller needs it, so hosts where it cannot load pay nothing and every caller can fall back.
 */
import { createRequire } from 'node:module';

type Koffi = typeof import('koffi');
export type LibcLibrary = ReturnType<Koffi['load']>;

export interface NativeLibc {
  koffi: Koffi;
  lib: LibcLibrary;
}

let loaded: NativeLibc | null = null;
let failure: string | null = null;

/** koffi and libc.so.6, or throws an Error saying why they cannot load (the reason is kept: later calls fail fast). */
export function nativeLibc(): NativeLibc {
  if (loaded) return loaded;
  if (failure !== null) throw new Error(failure);
  try {
    const koffi = createRequire(import.meta.url)('koffi') as Koffi;
    loaded = { koffi, lib: koffi.load('libc.so.6') };
    return loaded;
  } catch (e) {
    failure = `cannot load libc through koffi: ${e instanceof Error ? e.message : String(e)}`;
    throw new Error(failure);
  }
}

/** The same, or null where koffi or libc cannot load (for callers with a fallback). */
export function tryNativeLibc(): NativeLibc | null {
  try { return nativeLibc(); } catch { return null; }
}
