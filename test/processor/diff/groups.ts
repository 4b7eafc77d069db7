/** The instruction groups of the differential tests, each a generator with a default case count. */
import type { DiffCase } from './case.js';
import type { Rng } from './rng.js';

export interface Group { generate(rng: Rng, n: number): DiffCase[]; defaultCases: number; describe: string }

export const GROUPS: Record<string, Group> = {};
