/**
 * The parsers under test, each fed a list of chunks (as a socket delivers them) and consuming
 * every message so that no work can be optimised away. Each returns a Tally that the runner
 * checks against the stream's expected totals.
 */
import { BackendType, decodeBackend, decodeDataRowText, decodeText, Framer } from '@pgconn/core';
import type { BackendMessage, CopyDataMessage, DataRowMessage } from 'pg-protocol/dist/messages.js';
import { Parser } from 'pg-protocol/dist/parser.js';

/**
 * `pgconn-text` is what `Connection.query()` uses (core's `decodeDataRowText`); `pgconn-text-per-field`
 * is the per-field decode it replaced, kept as an informative comparison.
 */
export type ParserId = 'pgconn' | 'pgconn-text' | 'pgconn-text-per-field' | 'pg-protocol';

export const PARSER_LABELS: Record<ParserId, string> = {
  pgconn: 'pgconn (views)',
  'pgconn-text': 'pgconn (text)',
  'pgconn-text-per-field': 'pgconn (text, per field)',
  'pg-protocol': 'pg-protocol',
};

const DATA_ROW = BackendType.DataRow;

/** What a parser saw. `bytes` counts payload bytes, `chars` UTF-16 code units of decoded fields. */
export class Tally {
  messages = 0;
  /** DataRow + CopyData messages. */
  rows = 0;
  fields = 0;
  nulls = 0;
  bytes = 0;
  chars = 0;
}

/**
 * pgconn, zero-copy: Framer + decodeBackend, DataRow fields consumed as Uint8Array views
 * (length summed, NULLs counted). Does less work than pg-protocol, which makes strings.
 */
export function parsePgconn(chunks: readonly Uint8Array[]): Tally {
  const t = new Tally();
  const framer = new Framer();
  for (let c = 0; c < chunks.length; c++) {
    framer.push(chunks[c]!);
    for (let f = framer.next(); f !== null; f = framer.next()) {
      const msg = decodeBackend(f);
      t.messages++;
      if (msg.type === 'DataRow') {
        t.rows++;
        const fields = msg.fields;
        t.fields += fields.length;
        for (let i = 0; i < fields.length; i++) {
          const v = fields[i];
          if (v == null) t.nulls++;
          else t.bytes += v.length;
        }
      } else if (msg.type === 'CopyData') {
        t.rows++;
        t.bytes += msg.data.length;
      }
    }
  }
  return t;
}

/**
 * pgconn, apples-to-apples with pg-protocol (which produces strings): each DataRow decoded straight
 * to strings by core's `decodeDataRowText`, as `Connection.query()` does (one UTF-8 decode per row,
 * fields cut out with `substring` when that is exact). Other messages go through `decodeBackend`;
 * CopyData stays bytes, as in pg-protocol.
 */
export function parsePgconnText(chunks: readonly Uint8Array[]): Tally {
  const t = new Tally();
  const framer = new Framer();
  for (let c = 0; c < chunks.length; c++) {
    framer.push(chunks[c]!);
    for (let f = framer.next(); f !== null; f = framer.next()) {
      t.messages++;
      if (f.type === DATA_ROW) {
        t.rows++;
        const fields = decodeDataRowText(f.body);
        t.fields += fields.length;
        let nulls = 0;
        let chars = 0;
        for (let i = 0; i < fields.length; i++) {
          const v = fields[i];
          if (v == null) nulls++;
          else chars += v.length;
        }
        t.nulls += nulls;
        t.chars += chars;
        // Field bytes = body - count word - one length word per field (NULLs have no bytes).
        t.bytes += f.body.length - 2 - 4 * fields.length;
        continue;
      }
      const msg = decodeBackend(f);
      if (msg.type === 'CopyData') {
        t.rows++;
        t.bytes += msg.data.length;
      }
    }
  }
  return t;
}

/**
 * pgconn, text decoded field by field (what core did before `decodeDataRowText`): as `parsePgconn`,
 * plus every DataRow field decoded to a JS string with core's `decodeText` (UTF-8).
 */
export function parsePgconnTextPerField(chunks: readonly Uint8Array[]): Tally {
  const t = new Tally();
  const framer = new Framer();
  for (let c = 0; c < chunks.length; c++) {
    framer.push(chunks[c]!);
    for (let f = framer.next(); f !== null; f = framer.next()) {
      const msg = decodeBackend(f);
      t.messages++;
      if (msg.type === 'DataRow') {
        t.rows++;
        const fields = msg.fields;
        t.fields += fields.length;
        for (let i = 0; i < fields.length; i++) {
          const v = fields[i];
          if (v == null) t.nulls++;
          else {
            t.bytes += v.length;
            t.chars += decodeText(v, 0, v.length).length;
          }
        }
      } else if (msg.type === 'CopyData') {
        t.rows++;
        t.bytes += msg.data.length;
      }
    }
  }
  return t;
}

/**
 * node-postgres's parser (`pg-protocol`), used as `pg` uses it: `parser.parse(chunk, callback)`.
 * Its DataRow fields are already strings; their lengths are summed, NULLs counted.
 */
export function parsePgProtocol(chunks: readonly Buffer[]): Tally {
  const t = new Tally();
  const parser = new Parser();
  const onMessage = (msg: BackendMessage): void => {
    t.messages++;
    if (msg.name === 'dataRow') {
      t.rows++;
      const fields = (msg as unknown as DataRowMessage).fields as (string | null)[];
      t.fields += fields.length;
      for (let i = 0; i < fields.length; i++) {
        const v = fields[i];
        if (v == null) t.nulls++;
        else t.chars += v.length;
      }
    } else if (msg.name === 'copyData') {
      t.rows++;
      t.bytes += (msg as unknown as CopyDataMessage).chunk.length;
    }
  };
  for (let c = 0; c < chunks.length; c++) parser.parse(chunks[c]!, onMessage);
  return t;
}
