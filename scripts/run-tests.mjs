#!/usr/bin/env node
// Runs the compiled tests under dist/test with Node's test runner.
// --unit skips the slow suites that boot a guest (dist/test/boot).
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';

const unitOnly = process.argv.includes('--unit');
const filters = process.argv.slice(2).filter((a) => !a.startsWith('--'));
const root = 'dist/test';
const files = [];
(function walk(dir) {
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) {
      if (unitOnly && name === 'boot') continue;
      walk(p);
    } else if (name.endsWith('.test.js') && (filters.length === 0 || filters.some((f) => p.includes(f)))) {
      files.push(p);
    }
  }
})(root);
if (files.length === 0) { console.error('no test files found under dist/test (did the build run?)'); process.exit(1); }
const r = spawnSync(process.execPath, ['--test', '--test-reporter=spec', ...files], { stdio: 'inherit' });
process.exit(r.status ?? 1);
