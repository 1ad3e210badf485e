/**
 * fast-check settings shared by the property tests: a fixed seed in CI for reproducibility plus, when
 * FC_RANDOM=1 (set by .ci/run for a second pass), a fresh seed. fast-check prints the seed and the
 * counterexample path of any failure, so a random failure can be replayed with FC_SEED=<seed>.
 */
import type { Parameters } from 'fast-check';

export const FIXED_SEED = 0x5eed_c0de;

export function fcParams<T>(numRuns = 300): Parameters<T> {
  const seedEnv = process.env.FC_SEED;
  const seed = seedEnv
    ? Number(seedEnv)
    : process.env.FC_RANDOM === '1'
      ? Date.now() ^ 0x9e3779b9
      : FIXED_SEED;
  return { seed, numRuns, verbose: 1 };
}

/** FUZZ_RUNS (set by `npm run fuzz`) replaces a property's CI run count. */
const RUNS = process.env.FUZZ_RUNS ? Number(process.env.FUZZ_RUNS) : undefined;
export const fuzzRuns = (ci: number): number => RUNS ?? ci;
/** A test timeout that fits FUZZ_RUNS. */
export const FUZZ_TIMEOUT = RUNS ? 30 * 60_000 : 60_000;
