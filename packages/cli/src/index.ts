export {
  formatResult,
  formatStep,
  type ProbeArgs,
  type ProbeReport,
  type ProbeStep,
  parseProbeArgs,
  probe,
} from './commands/probe.ts';
