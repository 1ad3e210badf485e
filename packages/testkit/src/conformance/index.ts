export { type ConformanceEnv, loadEnv, type PgEndpoint } from './env.ts';
export {
  CHECK_IDS,
  type CheckResult,
  type CheckStatus,
  type ConformanceOptions,
  runConformance,
} from './suite.ts';
export { formatTable, JSON_MARKER } from './table.ts';
