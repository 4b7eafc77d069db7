/*
 * Native side of the differential processor tests. One process runs a whole batch of cases read from stdin
 * and writes one result record per case to stdout (binary, little-endian; layout mirrored in ../native.ts).
 *
 * Per case: the code page (fixed address, RWX) gets the case's bytes and int3 fill, the data pages get a
 * xorshift32 pattern plus patches; then every GPR (RSP included), RFLAGS, XMM0-15, MXCSR and the x87 control
 * word are loaded and the code runs. Whatever signal ends it (int3 -> SIGTRAP normally, or a fault) is caught
 * on an alternate stack; the handler copies ucontext and siglongjmps back to the batch loop.
 *
 * Usage: runner CODE_ADDR CODE_SIZE DATA_ADDR DATA_SIZE   (hex or decimal)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/time.h>
#include <ucontext.h>
#include <unistd.h>

#define IN_MAGIC 0x45534143u  /* "CASE" */
#define OUT_MAGIC 0x544c5352u /* "RSLT" */

struct case_in {
  uint32_t magic;
  uint32_t code_len;
  uint64_t gpr[16];
  uint64_t rflags;
  uint32_t mxcsr;
  uint16_t fcw;
  uint16_t pad;
  uint8_t xmm[16][16];
  uint32_t data_seed;
  uint32_t npatch;
} __attribute__((packed));

struct case_out {
  uint32_t magic;
  int32_t signo;
  int32_t trapno;
  uint32_t cs;
  uint64_t err;
  uint64_t cr2;
  uint64_t gpr[16];
  uint64_t rip;
  uint64_t rflags;
  uint32_t mxcsr;
  uint16_t fcw, fsw, ftw, fop;
  uint8_t st[8][16];
  uint8_t xmm[16][16];
  uint32_t nranges;
} __attribute__((packed));

/* Read by the entry trampoline through RIP-relative operands, so no register is needed to reach them. */
uint64_t in_gpr[16];
uint64_t in_rflags;
uint32_t in_mxcsr;
uint16_t in_fcw;
uint8_t in_xmm[16][16] __attribute__((aligned(16)));
uint64_t code_entry;

static sigjmp_buf back;
static struct case_out out;

extern void enter_case(void) __attribute__((noreturn));
__asm__(
    ".intel_syntax noprefix\n"
    ".text\n"
    ".globl enter_case\n"
    "enter_case:\n"
    "  fninit\n"
    "  fldcw word ptr [rip+in_fcw]\n"
    "  ldmxcsr dword ptr [rip+in_mxcsr]\n"
    "  movdqu xmm0, [rip+in_xmm+0]\n"
    "  movdqu xmm1, [rip+in_xmm+16]\n"
    "  movdqu xmm2, [rip+in_xmm+32]\n"
    "  movdqu xmm3, [rip+in_xmm+48]\n"
    "  movdqu xmm4, [rip+in_xmm+64]\n"
    "  movdqu xmm5, [rip+in_xmm+80]\n"
    "  movdqu xmm6, [rip+in_xmm+96]\n"
    "  movdqu xmm7, [rip+in_xmm+112]\n"
    "  movdqu xmm8, [rip+in_xmm+128]\n"
    "  movdqu xmm9, [rip+in_xmm+144]\n"
    "  movdqu xmm10, [rip+in_xmm+160]\n"
    "  movdqu xmm11, [rip+in_xmm+176]\n"
    "  movdqu xmm12, [rip+in_xmm+192]\n"
    "  movdqu xmm13, [rip+in_xmm+208]\n"
    "  movdqu xmm14, [rip+in_xmm+224]\n"
    "  movdqu xmm15, [rip+in_xmm+240]\n"
    "  push qword ptr [rip+in_rflags]\n"
    "  popfq\n"
    /* MOV does not touch flags; RSP goes last. */
    "  mov rax, [rip+in_gpr+0]\n"
    "  mov rcx, [rip+in_gpr+8]\n"
    "  mov rdx, [rip+in_gpr+16]\n"
    "  mov rbx, [rip+in_gpr+24]\n"
    "  mov rbp, [rip+in_gpr+40]\n"
    "  mov rsi, [rip+in_gpr+48]\n"
    "  mov rdi, [rip+in_gpr+56]\n"
    "  mov r8, [rip+in_gpr+64]\n"
    "  mov r9, [rip+in_gpr+72]\n"
    "  mov r10, [rip+in_gpr+80]\n"
    "  mov r11, [rip+in_gpr+88]\n"
    "  mov r12, [rip+in_gpr+96]\n"
    "  mov r13, [rip+in_gpr+104]\n"
    "  mov r14, [rip+in_gpr+112]\n"
    "  mov r15, [rip+in_gpr+120]\n"
    "  mov rsp, [rip+in_gpr+32]\n"
    "  jmp qword ptr [rip+code_entry]\n"
    ".att_syntax prefix\n");

static void on_signal(int sig, siginfo_t *si, void *ctx) {
  ucontext_t *uc = (ucontext_t *)ctx;
  greg_t *g = uc->uc_mcontext.gregs;
  out.signo = sig;
  out.trapno = sig == SIGALRM ? -1 : (int32_t)g[REG_TRAPNO];
  out.cs = (uint32_t)(g[REG_CSGSFS] & 0xffff);
  out.err = (uint64_t)g[REG_ERR];
  out.cr2 = sig == SIGSEGV || sig == SIGBUS ? (uint64_t)si->si_addr : 0;
  static const int order[16] = {REG_RAX, REG_RCX, REG_RDX, REG_RBX, REG_RSP, REG_RBP, REG_RSI, REG_RDI,
                                REG_R8,  REG_R9,  REG_R10, REG_R11, REG_R12, REG_R13, REG_R14, REG_R15};
  for (int i = 0; i < 16; i++) out.gpr[i] = (uint64_t)g[order[i]];
  out.rip = (uint64_t)g[REG_RIP];
  out.rflags = (uint64_t)g[REG_EFL];
  struct _libc_fpstate *fp = uc->uc_mcontext.fpregs;
  if (fp) {
    out.mxcsr = fp->mxcsr;
    out.fcw = fp->cwd;
    out.fsw = fp->swd;
    out.ftw = fp->ftw;
    out.fop = fp->fop;
    memcpy(out.st, fp->_st, sizeof out.st);
    memcpy(out.xmm, fp->_xmm, sizeof out.xmm);
  }
  siglongjmp(back, 1);
}

static void die(const char *what) {
  fprintf(stderr, "diff runner: %s: %s\n", what, strerror(errno));
  exit(2);
}

static int read_full(void *buf, size_t n) {
  uint8_t *p = buf;
  while (n) {
    ssize_t r = read(0, p, n);
    if (r == 0) return 0;
    if (r < 0) { if (errno == EINTR) continue; die("read"); }
    p += r; n -= (size_t)r;
  }
  return 1;
}

static uint8_t *obuf;
static size_t olen, ocap;
static void emit(const void *p, size_t n) {
  if (olen + n > ocap) {
    ocap = (olen + n) * 2 + 65536;
    obuf = realloc(obuf, ocap);
    if (!obuf) die("realloc");
  }
  memcpy(obuf + olen, p, n);
  olen += n;
}
static void flush_out(void) {
  size_t off = 0;
  while (off < olen) {
    ssize_t w = write(1, obuf + off, olen - off);
    if (w < 0) { if (errno == EINTR) continue; die("write"); }
    off += (size_t)w;
  }
  olen = 0;
}

/* Same generator as fillData() in ../case.ts. */
static void fill_pattern(uint8_t *p, size_t n, uint32_t seed) {
  uint32_t x = seed ? seed : 0x9e3779b9u;
  for (size_t i = 0; i + 4 <= n; i += 4) {
    x ^= x << 13; x ^= x >> 17; x ^= x << 5;
    memcpy(p + i, &x, 4);
  }
}

int main(int argc, char **argv) {
  if (argc != 5) { fprintf(stderr, "usage: runner CODE_ADDR CODE_SIZE DATA_ADDR DATA_SIZE\n"); return 2; }
  uintptr_t code_addr = strtoull(argv[1], 0, 0), data_addr = strtoull(argv[3], 0, 0);
  size_t code_size = strtoull(argv[2], 0, 0), data_size = strtoull(argv[4], 0, 0);
  uint8_t *code = mmap((void *)code_addr, code_size, PROT_READ | PROT_WRITE | PROT_EXEC,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
  if (code == MAP_FAILED || (uintptr_t)code != code_addr) die("mmap code");
  uint8_t *data = mmap((void *)data_addr, data_size, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
  if (data == MAP_FAILED || (uintptr_t)data != data_addr) die("mmap data");
  uint8_t *initial = malloc(data_size);
  if (!initial) die("malloc");

  stack_t ss = {.ss_sp = malloc(1 << 16), .ss_size = 1 << 16, .ss_flags = 0};
  if (!ss.ss_sp || sigaltstack(&ss, 0)) die("sigaltstack");
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = on_signal;
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
  sigemptyset(&sa.sa_mask);
  int sigs[] = {SIGTRAP, SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGALRM};
  for (unsigned i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
    if (sigaction(sigs[i], &sa, 0)) die("sigaction");

  struct case_in in;
  while (read_full(&in, sizeof in)) {
    if (in.magic != IN_MAGIC || in.code_len > code_size) { fprintf(stderr, "diff runner: bad case record\n"); return 2; }
    memset(code, 0xcc, code_size);
    if (in.code_len && !read_full(code, in.code_len)) { fprintf(stderr, "diff runner: truncated code\n"); return 2; }
    fill_pattern(initial, data_size, in.data_seed);
    for (uint32_t i = 0; i < in.npatch; i++) {
      uint32_t hdr[2];
      if (!read_full(hdr, sizeof hdr) || hdr[0] > data_size || hdr[1] > data_size - hdr[0]) {
        fprintf(stderr, "diff runner: bad patch\n");
        return 2;
      }
      if (!read_full(initial + hdr[0], hdr[1])) { fprintf(stderr, "diff runner: truncated patch\n"); return 2; }
    }
    memcpy(data, initial, data_size);
    memcpy(in_gpr, in.gpr, sizeof in_gpr);
    in_rflags = in.rflags & 0xcd5; /* CF PF AF ZF SF DF OF only: never TF/AC */
    in_mxcsr = in.mxcsr;
    in_fcw = in.fcw;
    memcpy(in_xmm, in.xmm, sizeof in_xmm);
    code_entry = code_addr;
    memset(&out, 0, sizeof out);
    out.magic = OUT_MAGIC;

    struct itimerval guard = {.it_value = {.tv_sec = 2}};
    setitimer(ITIMER_REAL, &guard, 0);
    if (sigsetjmp(back, 1) == 0) enter_case();
    struct itimerval off = {0};
    setitimer(ITIMER_REAL, &off, 0);

    /* Changed data bytes as ranges (merging gaps shorter than 8 bytes keeps the record small). */
    uint32_t nr = 0;
    uint32_t ranges[2 * 64];
    int overflow = 0;
    for (size_t i = 0; i < data_size;) {
      if (data[i] == initial[i]) { i++; continue; }
      size_t j = i + 1, last = i;
      while (j < data_size && j - last < 8) { if (data[j] != initial[j]) last = j; j++; }
      if (nr == 64) { overflow = 1; break; }
      ranges[2 * nr] = (uint32_t)i;
      ranges[2 * nr + 1] = (uint32_t)(last + 1 - i);
      nr++;
      i = last + 1;
    }
    if (overflow) { nr = 1; ranges[0] = 0; ranges[1] = (uint32_t)data_size; }
    out.nranges = nr;
    emit(&out, sizeof out);
    for (uint32_t r = 0; r < nr; r++) {
      emit(&ranges[2 * r], 8);
      emit(data + ranges[2 * r], ranges[2 * r + 1]);
    }
    if (olen > (1 << 20)) flush_out();
  }
  flush_out();
  return 0;
}
