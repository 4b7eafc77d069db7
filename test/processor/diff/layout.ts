/**
 * Fixed virtual layout shared by the native runner and the emulated test machine: both map exactly these
 * pages, so addresses (and page faults just outside them) are identical. Everything sits below 4 GiB so
 * compatibility-mode (32-bit) code can reach it.
 */
export const CODE_ADDR = 0x10000000;
export const CODE_SIZE = 0x1000;
export const DATA_ADDR = 0x20000000;
export const DATA_SIZE = 0x2000;
/** Compatibility-mode and 64-bit user code selectors of a Linux process (GDT entries 4 and 6). */
export const USER32_CS = 0x23;
export const USER_DS = 0x2b;
export const USER64_CS = 0x33;

/** RFLAGS bits the cases may set and the comparison looks at. */
export const FL = { CF: 0x1, PF: 0x4, AF: 0x10, ZF: 0x40, SF: 0x80, DF: 0x400, OF: 0x800 } as const;
export const ARITH_FLAGS = 0x8d5;
export const COMPARED_FLAGS = 0xcd5;
