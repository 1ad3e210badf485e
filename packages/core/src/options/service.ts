/**
 * Connection service files (`pg_service.conf`, `~/.pg_service.conf`), as libpq's parseServiceFile
 * (fe-connect.c). The caller reads the file; this parses its text.
 *
 *   # comment
 *   [mydb]
 *   host=db.example.com
 *   dbname=app
 *
 * Lines are trimmed (C isspace) and limited to 1022 bytes plus the newline. A `[name]` line starts
 * a group; the service matches when the line starts with `[` + name + `]` (case-sensitive; text
 * after the `]` is ignored). Inside the wanted group every other line must be `keyword=value`, with
 * no quoting and no spaces around `=`, and the keyword must be a connection keyword. Lines of other
 * groups are not checked. The first setting of a keyword in the group wins. LDAP lines are not
 * supported (libpq built without LDAP treats them as ordinary lines).
 */
import { OptionError } from '../errors.ts';
import { isCSpace, isKeyword } from './keywords.ts';

/** fgets() buffer of parseServiceFile: a line (with its newline) must be shorter than 1023 bytes. */
const MAX_LINE_BYTES = 1023;

const utf8 = new TextEncoder();

function trimC(s: string): string {
  let a = 0;
  let b = s.length;
  while (a < b && isCSpace(s[a])) a++;
  while (b > a && isCSpace(s[b - 1])) b--;
  return s.slice(a, b);
}

/**
 * The options of service `serviceName` in the service file `text`, or null when the file has no
 * such group. `fileName` is only used in error messages.
 */
export function parseServiceFile(
  text: string,
  serviceName: string,
  fileName = 'pg_service.conf',
): Record<string, string> | null {
  const result: Record<string, string> = {};
  let groupFound = false;
  const lines = text.split('\n');
  for (let index = 0; index < lines.length; index++) {
    const raw = lines[index]!;
    const hasNewline = index < lines.length - 1;
    if (!hasNewline && raw === '') break; // text ended with a newline
    const lineNumber = index + 1;
    const rawBytes = raw.length * 3 < MAX_LINE_BYTES - 1 ? raw.length : utf8.encode(raw).length;
    if (rawBytes + (hasNewline ? 1 : 0) >= MAX_LINE_BYTES) {
      throw new OptionError(`line ${lineNumber} too long in service file "${fileName}"`);
    }
    const line = trimC(raw);
    if (line === '' || line.startsWith('#')) continue;

    if (line.startsWith('[')) {
      // The end of the wanted group ends the search.
      if (groupFound) return result;
      groupFound = line.startsWith(serviceName, 1) && line[serviceName.length + 1] === ']';
      continue;
    }
    if (!groupFound) continue;

    const eq = line.indexOf('=');
    if (eq < 0) throw new OptionError(`syntax error in service file "${fileName}", line ${lineNumber}`);
    const key = line.slice(0, eq);
    const value = line.slice(eq + 1);
    if (key === 'service' || key === 'servicefile') {
      throw new OptionError(
        `nested ${key} specifications not supported in service file "${fileName}", line ${lineNumber}`,
      );
    }
    if (!isKeyword(key))
      throw new OptionError(`syntax error in service file "${fileName}", line ${lineNumber}`);
    if (!Object.hasOwn(result, key)) result[key] = value;
  }
  return groupFound ? result : null;
}
