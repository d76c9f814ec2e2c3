// Run parameters for the property and fuzz tests (src/**/*.fuzz.test.ts).
//
// CI: every property has a fixed seed and a run count sized for about a second, plus a time cap
// (the property stops early, and passes, if a slow machine needs longer), so `npm test` stays
// repeatable and bounded. Developers fuzz longer with:
//
//   FUZZ_RUNS=100000 npm run test:one -- src/xml/parser.fuzz.test.ts   # runs per property
//   FUZZ_SECONDS=600 npm run test:one -- src/jid/jid.fuzz.test.ts       # time per property
//   FUZZ_SEED=random ...  (or a number)                                  # other inputs than CI's
//
// A failure prints the seed and the shrunk counterexample; reproduce it with that FUZZ_SEED and
// turn it into a regression test beside the code.
import type { Parameters } from 'fast-check';

/** Longest a property may run in CI before it stops early (it still passes). */
const CI_CAP_MS = 5000;

export function fuzzParams<T>(seed: number, ciRuns: number): Parameters<T> {
  const envSeed = process.env.FUZZ_SEED;
  const s = envSeed === undefined || envSeed === ''
    ? seed
    : envSeed === 'random' ? (Date.now() ^ (Math.random() * 0x7fffffff)) | 0 : Number(envSeed);
  const base = { seed: s, includeErrorInReport: true };
  const seconds = Number(process.env.FUZZ_SECONDS);
  if (seconds > 0) {
    return { ...base, numRuns: Number.MAX_SAFE_INTEGER, interruptAfterTimeLimit: seconds * 1000, markInterruptAsFailure: false };
  }
  const runs = Number(process.env.FUZZ_RUNS);
  if (runs > 0) return { ...base, numRuns: runs };
  return { ...base, numRuns: ciRuns, interruptAfterTimeLimit: CI_CAP_MS, markInterruptAsFailure: false };
}

/** True when a developer asked for a long run (tests may then scale other bounds). */
export const longFuzz = Number(process.env.FUZZ_SECONDS) > 0 || Number(process.env.FUZZ_RUNS) > 0;
