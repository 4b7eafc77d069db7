/** Runs one generator group on both CPUs and collects divergences. */
import type { CaseResult, DiffCase } from './case.js';
import { compareResults, renderDivergence } from './compare.js';
import { EmulatedRunner, emulatorLoadError, loadEmulator } from './emulated.js';
import { GROUPS } from './groups.js';
import { runNative } from './native.js';
import { Rng } from './rng.js';

export interface Divergence { c: DiffCase; native: CaseResult; emulated: CaseResult; diffs: string[] }
export interface GroupReport {
  group: string;
  seed: number;
  total: number;
  passed: number;
  /** Cases the host could not run (e.g. 32-bit code on a host without compatibility mode). */
  notRun: number;
  notRunReason?: string;
  /** Cases checked against the group's reference model instead of the host (host cannot run them). */
  byReference?: number;
  /** Number of divergent cases per instruction form (case name). */
  byForm: Map<string, { failed: number; total: number }>;
  divergences: Divergence[];
}

export function generate(group: string, n: number, seed: number): DiffCase[] {
  const g = GROUPS[group];
  if (!g) throw new Error(`unknown group '${group}' (groups: ${Object.keys(GROUPS).join(', ')})`);
  return g.generate(new Rng(seed), n);
}

export async function runGroup(group: string, opts: { cases?: number; seed?: number } = {}): Promise<GroupReport> {
  const n = opts.cases ?? GROUPS[group]?.defaultCases ?? 2000;
  const seed = opts.seed ?? 1;
  const cases = generate(group, n, seed);
  const native = runNative(cases);
  const create = await loadEmulator();
  if (!create) throw new Error(`emulated processor not available: ${emulatorLoadError()}`);
  const emu = new EmulatedRunner(create);
  const report: GroupReport = { group, seed, total: cases.length, passed: 0, notRun: 0, byForm: new Map(), divergences: [] };
  for (let i = 0; i < cases.length; i++) {
    const c = cases[i];
    if (native[i].kind === 'unsupported') {
      const ref = GROUPS[group].reference;
      if (!ref) { report.notRun++; report.notRunReason = native[i].message; continue; }
      native[i] = ref(c);
      report.byReference = (report.byReference ?? 0) + 1;
    }
    const e = emu.run(c);
    const diffs = compareResults(c, native[i], e);
    const f = report.byForm.get(c.name) ?? { failed: 0, total: 0 };
    f.total++;
    if (diffs.length === 0) report.passed++;
    else { f.failed++; report.divergences.push({ c, native: native[i], emulated: e, diffs }); }
    report.byForm.set(c.name, f);
  }
  return report;
}

/** Summary plus the first divergence of up to `maxForms` distinct forms. */
export function formatReport(r: GroupReport, maxForms = 12): string {
  const ran = r.total - r.notRun;
  const lines = [`group ${r.group} (seed ${r.seed}): ${r.passed}/${ran} cases agree, ${ran - r.passed} diverge`];
  if (r.byReference) lines.push(`${r.byReference} cases checked against the SDM reference model (host cannot run them natively)`);
  if (r.notRun) lines.push(`${r.notRun} cases not run natively: ${r.notRunReason}`);
  const failing = [...r.byForm].filter(([, f]) => f.failed).sort((a, b) => b[1].failed - a[1].failed);
  if (failing.length) {
    lines.push(`failing forms (${failing.length} of ${r.byForm.size}):`);
    for (const [name, f] of failing.slice(0, 40)) lines.push(`  ${f.failed}/${f.total}  ${name}`);
    if (failing.length > 40) lines.push(`  ... ${failing.length - 40} more`);
    const seen = new Set<string>();
    for (const d of r.divergences) {
      if (seen.has(d.c.name)) continue;
      seen.add(d.c.name);
      lines.push(renderDivergence(d.c, d.diffs));
      if (seen.size >= maxForms) break;
    }
  }
  return lines.join('\n');
}
