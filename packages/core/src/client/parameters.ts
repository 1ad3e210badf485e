/**
 * The server's run-time parameters (ParameterStatus). A server reports a dozen or so; a hostile one
 * could announce a new name per message forever. Updates to a known name are free; distinct names
 * stop at a cap, so the map (and the memory behind it) stays bounded.
 */
import { ProtocolError } from '../errors.ts';

/** Far above the ~15 parameters PostgreSQL reports (GUC_REPORT), far below a memory problem. */
export const MAX_PARAMETERS = 1000;

export function setParameter(parameters: Map<string, string>, name: string, value: string): void {
  if (parameters.size >= MAX_PARAMETERS && !parameters.has(name)) {
    throw new ProtocolError(`server reported more than ${MAX_PARAMETERS} distinct run-time parameters`);
  }
  parameters.set(name, value);
}
