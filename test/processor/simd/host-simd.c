/*
 * Reference executor for the SIMD differential tests: runs one SSE/x87 operation natively per input line
 * and prints the result. Input: "<op> <ctl> <a:32 hex> <b:32 hex>" (a, b as 16 little-endian bytes in hex).
 * Output: "<result:32 hex> <mxcsr or x87 status> <rflags>". Exceptions stay masked (no signals).
 */
#include <stdio.h>
#include <stdint.h>
#include <string.h>
#include <signal.h>
#include <setjmp.h>
#include <ucontext.h>

/* Unmasked SIMD exceptions arrive as SIGFPE: record MXCSR at the fault and report "faulted" (bit 16 of the
   flags column); the destination keeps its input value because the instruction did not complete. */
static sigjmp_buf fault_jb;
static unsigned fault_mx;
static void on_fpe(int sig, siginfo_t *si, void *uc) {
  (void)sig; (void)si;
  fault_mx = ((ucontext_t *)uc)->uc_mcontext.fpregs->mxcsr;
  siglongjmp(fault_jb, 1);
}
#define CATCH if (sigsetjmp(fault_jb, 1)) { ctl = fault_mx; fl = 0x10000; goto done; }

typedef struct { uint8_t b[16]; } __attribute__((aligned(16))) x128;

static int hexval(int c) { return c <= '9' ? c - '0' : (c | 32) - 'a' + 10; }
static void parse(const char *s, x128 *v) { for (int i = 0; i < 16; i++) v->b[i] = hexval(s[2 * i]) << 4 | hexval(s[2 * i + 1]); }
static void print(const x128 *v) { for (int i = 0; i < 16; i++) printf("%02x", v->b[i]); }

#define SSE2(name, text) \
  if (!strcmp(op, name)) { CATCH \
    __asm__ volatile("ldmxcsr %[m]\n\tmovdqa %[a], %%xmm0\n\tmovdqa %[b], %%xmm1\n\t" text "\n\tmovdqa %%xmm0, %[a]\n\tstmxcsr %[m]" \
      : [a] "+m"(a), [m] "+m"(ctl) : [b] "m"(b) : "xmm0", "xmm1"); goto done; }
#define BIN(name) SSE2(#name, #name " %%xmm1, %%xmm0")
#define BINI(name, imm) SSE2(#name "_" #imm, #name " $" #imm ", %%xmm1, %%xmm0")
#define SHI(name, imm) SSE2(#name "_" #imm, #name " $" #imm ", %%xmm0")
/* flags-setting compares */
#define COMI(name) \
  if (!strcmp(op, #name)) { CATCH \
    __asm__ volatile("ldmxcsr %[m]\n\tmovdqa %[a], %%xmm0\n\tmovdqa %[b], %%xmm1\n\tpushfq\n\tpop %%rax\n\tor $0x8d5, %%eax\n\tpush %%rax\n\tpopfq\n\t" #name " %%xmm1, %%xmm0\n\tpushfq\n\tpop %[f]\n\tstmxcsr %[m]" \
      : [m] "+m"(ctl), [f] "=r"(fl) : [a] "m"(a), [b] "m"(b) : "xmm0", "xmm1", "rax", "cc"); goto done; }
/* xmm -> gpr */
#define TOGPR(name, reg) \
  if (!strcmp(op, #name "_" #reg)) { uint64_t r = 0; CATCH \
    __asm__ volatile("ldmxcsr %[m]\n\tmovdqa %[b], %%xmm1\n\tmov $0x5555555555555555, %%rax\n\t" #name " %%xmm1, %%" #reg "\n\tmov %%rax, %[r]\n\tstmxcsr %[m]" \
      : [m] "+m"(ctl), [r] "=m"(r) : [b] "m"(b) : "xmm1", "rax"); memset(&a, 0, 16); memcpy(&a, &r, 8); goto done; }
/* gpr -> xmm */
#define FROMGPR(name, reg) \
  if (!strcmp(op, #name "_" #reg)) { uint64_t s; memcpy(&s, &b, 8); CATCH \
    __asm__ volatile("ldmxcsr %[m]\n\tmovdqa %[a], %%xmm0\n\tmov %[s], %%rax\n\t" #name " %%" #reg ", %%xmm0\n\tmovdqa %%xmm0, %[a]\n\tstmxcsr %[m]" \
      : [a] "+m"(a), [m] "+m"(ctl) : [s] "m"(s) : "xmm0", "rax"); goto done; }

/* x87: a and b hold 80-bit values (bytes 0..9); ctl is the control word. Result ST0 (80-bit) and status. */
#define X87(name, text) \
  if (!strcmp(op, name)) { uint16_t cw = ctl, sw; \
    __asm__ volatile("fninit\n\tfldcw %[cw]\n\tfldt %[b]\n\tfldt %[a]\n\t" text "\n\tfnstsw %[sw]\n\tfstpt %[a]\n\tfninit" \
      : [a] "+m"(a), [sw] "=m"(sw) : [b] "m"(b), [cw] "m"(cw) : "st", "st(1)", "st(2)", "st(3)", "st(4)", "st(5)", "st(6)", "st(7)", "ax", "cc"); ctl = sw; goto done; }
/* x87 store forms: ST0 = a stored with the given instruction to memory r (printed as result). */
#define X87ST(name, text) \
  if (!strcmp(op, name)) { uint16_t cw = ctl, sw; x128 r; memset(&r, 0, 16); \
    __asm__ volatile("fninit\n\tfldcw %[cw]\n\tfldt %[a]\n\t" text " %[r]\n\tfnstsw %[sw]\n\tfninit" \
      : [r] "+m"(r), [sw] "=m"(sw) : [a] "m"(a), [cw] "m"(cw) : "st", "st(1)", "st(2)", "st(3)", "st(4)", "st(5)", "st(6)", "st(7)", "cc"); a = r; ctl = sw; goto done; }
/* x87 load forms: memory b loaded, ST0 stored as 80-bit. */
#define X87LD(name, text) \
  if (!strcmp(op, name)) { uint16_t cw = ctl, sw; \
    __asm__ volatile("fninit\n\tfldcw %[cw]\n\t" text " %[b]\n\tfnstsw %[sw]\n\tfstpt %[a]\n\tfninit" \
      : [a] "+m"(a), [sw] "=m"(sw) : [b] "m"(b), [cw] "m"(cw) : "st", "st(1)", "st(2)", "st(3)", "st(4)", "st(5)", "st(6)", "st(7)", "cc"); ctl = sw; goto done; }
#define X87FL(name, text) \
  if (!strcmp(op, name)) { uint16_t cw = ctl, sw; \
    __asm__ volatile("fninit\n\tfldcw %[cw]\n\tfldt %[b]\n\tfldt %[a]\n\tpushfq\n\tpop %%rax\n\tor $0x8d5, %%eax\n\tpush %%rax\n\tpopfq\n\t" text "\n\tpushfq\n\tpop %[f]\n\tfnstsw %[sw]\n\tfninit" \
      : [sw] "=m"(sw), [f] "=r"(fl) : [a] "m"(a), [b] "m"(b), [cw] "m"(cw) : "st", "st(1)", "st(2)", "st(3)", "st(4)", "st(5)", "st(6)", "st(7)", "rax", "cc"); ctl = sw; goto done; }

int main(void) {
  char op[64], as[40], bs[40];
  unsigned ctl;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = on_fpe;
  sa.sa_flags = SA_SIGINFO | SA_NODEFER;
  sigaction(SIGFPE, &sa, 0);
  while (scanf("%63s %x %39s %39s", op, &ctl, as, bs) == 4) {
    x128 a, b; volatile uint64_t fl = 0;
    parse(as, &a); parse(bs, &b);
    if (!strcmp(op, "fxsave64")) { /* state: x87 stack b, a (control word = low 16 bits of ctl), MXCSR = ctl >> 16, xmm0 = a, xmm15 = b */
      static uint8_t area[512] __attribute__((aligned(16)));
      uint16_t cw = ctl & 0xffff; uint32_t mx = ctl >> 16;
      memset(area, 0xa5, sizeof area);
      __asm__ volatile("fninit\n\tfldcw %[cw]\n\tfldt %[b]\n\tfldt %[a]\n\tldmxcsr %[mx]\n\tmovdqa %[a], %%xmm0\n\tmovdqa %[b], %%xmm15\n\tfxsave64 %[area]\n\tfninit"
        : [area] "=m"(area) : [a] "m"(a), [b] "m"(b), [cw] "m"(cw), [mx] "m"(mx) : "xmm0", "xmm15", "st", "st(1)", "st(2)", "st(3)", "st(4)", "st(5)", "st(6)", "st(7)");
      for (int i = 0; i < 512; i++) printf("%02x", area[i]);
      printf(" 0 0\n");
      continue;
    }
    BIN(addps) BIN(addss) BIN(addpd) BIN(addsd) BIN(subps) BIN(subss) BIN(subpd) BIN(subsd)
    BIN(mulps) BIN(mulss) BIN(mulpd) BIN(mulsd) BIN(divps) BIN(divss) BIN(divpd) BIN(divsd)
    BIN(minps) BIN(minss) BIN(minpd) BIN(minsd) BIN(maxps) BIN(maxss) BIN(maxpd) BIN(maxsd)
    BIN(sqrtps) BIN(sqrtss) BIN(sqrtpd) BIN(sqrtsd)
    BIN(andps) BIN(andnps) BIN(orps) BIN(xorps) BIN(andpd) BIN(andnpd) BIN(orpd) BIN(xorpd)
    BIN(unpcklps) BIN(unpckhps) BIN(unpcklpd) BIN(unpckhpd) BIN(movss) BIN(movsd) BIN(movhlps) BIN(movlhps) BIN(movq)
    BINI(cmpps, 0) BINI(cmpps, 1) BINI(cmpps, 2) BINI(cmpps, 3) BINI(cmpps, 4) BINI(cmpps, 5) BINI(cmpps, 6) BINI(cmpps, 7)
    BINI(cmpss, 0) BINI(cmpss, 1) BINI(cmpss, 2) BINI(cmpss, 3) BINI(cmpss, 4) BINI(cmpss, 5) BINI(cmpss, 6) BINI(cmpss, 7)
    BINI(cmppd, 0) BINI(cmppd, 1) BINI(cmppd, 2) BINI(cmppd, 3) BINI(cmppd, 4) BINI(cmppd, 5) BINI(cmppd, 6) BINI(cmppd, 7)
    BINI(cmpsd, 0) BINI(cmpsd, 1) BINI(cmpsd, 2) BINI(cmpsd, 3) BINI(cmpsd, 4) BINI(cmpsd, 5) BINI(cmpsd, 6) BINI(cmpsd, 7)
    BINI(shufps, 0x1b) BINI(shufps, 0xe4) BINI(shufps, 0x4e) BINI(shufpd, 0) BINI(shufpd, 1) BINI(shufpd, 2) BINI(shufpd, 3)
    BINI(pshufd, 0x1b) BINI(pshufd, 0x4e) BINI(pshufd, 0x0) BINI(pshufhw, 0x1b) BINI(pshuflw, 0xb1)
    COMI(comiss) COMI(ucomiss) COMI(comisd) COMI(ucomisd)
    BIN(cvtss2sd) BIN(cvtsd2ss) BIN(cvtps2pd) BIN(cvtpd2ps) BIN(cvtdq2ps) BIN(cvtps2dq) BIN(cvttps2dq)
    BIN(cvtdq2pd) BIN(cvtpd2dq) BIN(cvttpd2dq) BIN(rcpps) BIN(rsqrtps)
    TOGPR(cvtss2si, eax) TOGPR(cvtss2si, rax) TOGPR(cvttss2si, eax) TOGPR(cvttss2si, rax)
    TOGPR(cvtsd2si, eax) TOGPR(cvtsd2si, rax) TOGPR(cvttsd2si, eax) TOGPR(cvttsd2si, rax)
    TOGPR(movmskps, eax) TOGPR(movmskpd, eax) TOGPR(pmovmskb, eax)
    FROMGPR(cvtsi2ss, eax) FROMGPR(cvtsi2ss, rax) FROMGPR(cvtsi2sd, eax) FROMGPR(cvtsi2sd, rax)
    BIN(paddb) BIN(paddw) BIN(paddd) BIN(paddq) BIN(psubb) BIN(psubw) BIN(psubd) BIN(psubq)
    BIN(paddsb) BIN(paddsw) BIN(paddusb) BIN(paddusw) BIN(psubsb) BIN(psubsw) BIN(psubusb) BIN(psubusw)
    BIN(pmullw) BIN(pmulhw) BIN(pmulhuw) BIN(pmuludq) BIN(pmaddwd) BIN(psadbw) BIN(pavgb) BIN(pavgw)
    BIN(pminub) BIN(pmaxub) BIN(pminsw) BIN(pmaxsw) BIN(pcmpeqb) BIN(pcmpeqw) BIN(pcmpeqd)
    BIN(pcmpgtb) BIN(pcmpgtw) BIN(pcmpgtd) BIN(pand) BIN(por) BIN(pxor) BIN(pandn)
    BIN(punpcklbw) BIN(punpcklwd) BIN(punpckldq) BIN(punpcklqdq) BIN(punpckhbw) BIN(punpckhwd) BIN(punpckhdq) BIN(punpckhqdq)
    BIN(packsswb) BIN(packssdw) BIN(packuswb)
    BIN(psllw) BIN(pslld) BIN(psllq) BIN(psrlw) BIN(psrld) BIN(psrlq) BIN(psraw) BIN(psrad)
    SHI(psllw, 3) SHI(psrlw, 15) SHI(psraw, 9) SHI(pslld, 17) SHI(psrld, 31) SHI(psrad, 40) SHI(psllq, 33) SHI(psrlq, 7)
    SHI(pslldq, 3) SHI(psrldq, 5) SHI(pslldq, 17) SHI(psrldq, 15)
    X87("fadd", "fadd %%st(1), %%st") X87("fsub", "fsub %%st(1), %%st") X87("fsubr", "fsubr %%st(1), %%st")
    X87("fmul", "fmul %%st(1), %%st") X87("fdiv", "fdiv %%st(1), %%st") X87("fdivr", "fdivr %%st(1), %%st")
    X87("fsqrt", "fsqrt") X87("frndint", "frndint") X87("fchs", "fchs") X87("fabs", "fabs") X87("fxam", "fxam")
    X87("fcom", "fcom %%st(1)") X87("fucom", "fucom %%st(1)") X87("ftst", "ftst") X87("fscale", "fscale") X87("fprem", "fprem") X87("fprem1", "fprem1") X87("fxtract", "fxtract")
    X87("fld1", "fld1") X87("fldz", "fldz") X87("fldpi", "fldpi") X87("fldl2e", "fldl2e") X87("fldl2t", "fldl2t") X87("fldlg2", "fldlg2") X87("fldln2", "fldln2")
    X87FL("fcomi", "fcomi %%st(1), %%st") X87FL("fucomi", "fucomi %%st(1), %%st")
    X87ST("fsts", "fstps") X87ST("fstl", "fstpl") X87ST("fistps", "fistps") X87ST("fistpl", "fistpl") X87ST("fistpll", "fistpll") X87ST("fbstp", "fbstp")
    X87LD("flds", "flds") X87LD("fldl", "fldl") X87LD("filds", "filds") X87LD("fildl", "fildl") X87LD("fildll", "fildll") X87LD("fbld", "fbld")
    printf("unknown %s\n", op); continue;
  done:
    print(&a); printf(" %x %llx\n", ctl, (unsigned long long)(fl & 0x108d5));
  }
  return 0;
}
