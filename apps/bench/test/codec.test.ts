import { BackendType, decodeDataRowText, encodeBackend, Framer, Writer } from '@pgconn/core';
import type { BackendMessage, DataRowMessage } from 'pg-protocol/dist/messages.js';
import { Parser } from 'pg-protocol/dist/parser.js';
import { describe, expect, it } from 'vitest';
import {
  parsePgconn,
  parsePgconnText,
  parsePgconnTextPerField,
  parsePgProtocol,
} from '../src/codec/parsers.ts';
import { chunkBuffers, chunkViews, expectedTally, QUICK, runCodecBench } from '../src/codec/run.ts';
import { copyBulkStream, copyLinesStream, dataRowStream } from '../src/codec/streams.ts';

// Two runs after a warm-up, several parses per run: exercises the shared-chunk repetition path,
// where any write into a shared chunk would show up as a tally mismatch (the run throws).
const tiny = {
  ...QUICK,
  rows: 400,
  copyLines: 400,
  bulkMessages: 3,
  runs: 2,
  warmup: 1,
  minSampleMs: 2,
};

describe('codec bench', () => {
  it('quick mode: every parser sees the same messages, rows, NULLs and field bytes', () => {
    const report = runCodecBench(tiny);
    expect(report.workloads.map((w) => w.id)).toEqual(['datarow', 'copy-lines', 'copy-bulk']);
    for (const w of report.workloads) {
      const results = report.results.filter((m) => m.workload === w.id);
      const pg = results.find((m) => m.parser === 'pg-protocol')!.tally;
      expect(pg.messages).toBe(w.messages);
      expect(pg.rows).toBe(w.rows);
      for (const m of results) {
        expect(m.tally.messages).toBe(pg.messages);
        expect(m.tally.rows).toBe(pg.rows);
        expect(m.tally.fields).toBe(pg.fields);
        expect(m.tally.nulls).toBe(pg.nulls);
        expect(m.timesMs).toHaveLength(tiny.runs);
      }
      const views = results.find((m) => m.parser === 'pgconn')!.tally;
      if (w.id === 'datarow') {
        const text = results.find((m) => m.parser === 'pgconn-text')!.tally;
        const perField = results.find((m) => m.parser === 'pgconn-text-per-field')!.tally;
        expect(text.bytes).toBe(views.bytes);
        expect(perField.bytes).toBe(views.bytes);
        expect(text.chars).toBe(pg.chars);
        expect(perField.chars).toBe(pg.chars);
        expect(pg.nulls).toBeGreaterThan(0);
      } else {
        expect(views.bytes).toBe(pg.bytes);
      }
    }
    // The ≥ 1.5× verdict applies to views and text; the per-field decode is informative only.
    const datarow = report.ratios.filter((r) => r.workload === 'datarow');
    expect(datarow.filter((r) => r.target === 1.5).map((r) => r.parser)).toEqual(['pgconn', 'pgconn-text']);
    expect(datarow.find((r) => r.parser === 'pgconn-text-per-field')?.pass).toBeUndefined();
    expect(report.ratios.filter((r) => r.workload !== 'datarow' && r.target !== undefined)).toEqual([]);
  });

  it('DataRow: pg-protocol and pgconn decode the same values from the same bytes', () => {
    const s = dataRowStream(300);
    // Odd chunk sizes split messages, length words and UTF-8 characters across chunks.
    for (const size of [7, 1000, 64 * 1024]) {
      const values: (string | null)[] = [];
      const parser = new Parser();
      const onMessage = (msg: BackendMessage): void => {
        if (msg.name === 'dataRow')
          values.push(...((msg as unknown as DataRowMessage).fields as (string | null)[]));
      };
      // A copy: pg-protocol may write into the Buffers it is given.
      for (const chunk of chunkBuffers(s.bytes.slice(), size)) parser.parse(chunk, onMessage);

      const fieldBytes = values.reduce((n, v) => n + (v === null ? 0 : Buffer.byteLength(v)), 0);
      expect(fieldBytes).toBe(s.payloadBytes);
      expect(values.some((v) => v !== null && Buffer.byteLength(v) !== v.length)).toBe(true); // non-ASCII present

      const views = parsePgconn(chunkViews(s.bytes, size));
      expect(views.bytes).toBe(fieldBytes);
      expect(views.nulls).toBe(values.filter((v) => v === null).length);
      const chars = values.reduce((n, v) => n + (v?.length ?? 0), 0);
      expect(parsePgconnText(chunkViews(s.bytes, size)).chars).toBe(chars);
      expect(parsePgconnTextPerField(chunkViews(s.bytes, size)).chars).toBe(chars);
      expect(parsePgconnText(chunkViews(s.bytes, size))).toEqual(expectedTally(s, 'pgconn-text'));
      expect(parsePgconnTextPerField(chunkViews(s.bytes, size))).toEqual(
        expectedTally(s, 'pgconn-text-per-field'),
      );

      // Value by value: core's row-at-once decoder (what the text variant runs) gives pg's strings.
      const ours: (string | null)[] = [];
      const framer = new Framer();
      for (const chunk of chunkViews(s.bytes, size)) {
        framer.push(chunk);
        for (let f = framer.next(); f !== null; f = framer.next()) {
          if (f.type === BackendType.DataRow) ours.push(...decodeDataRowText(f.body));
        }
      }
      expect(ours).toEqual(values);
    }
  });

  it('COPY: both parsers see the same CopyData bytes', () => {
    for (const s of [copyLinesStream(300), copyBulkStream(3, 64 * 1024)]) {
      const pg = parsePgProtocol(chunkBuffers(s.bytes.slice(), 64 * 1024));
      const ours = parsePgconn(chunkViews(s.bytes, 64 * 1024));
      expect(ours).toEqual(pg);
      expect(ours).toEqual(expectedTally(s, 'pgconn'));
    }
  });

  it('the streams are deterministic and sized as documented', () => {
    expect(dataRowStream(200).bytes).toEqual(dataRowStream(200).bytes);
    const perRow = dataRowStream(2000).bytes.length / 2000;
    expect(perRow).toBeGreaterThan(100);
    expect(perRow).toBeLessThan(160);
    const perLine = copyLinesStream(2000).payloadBytes / 2000;
    expect(perLine).toBeGreaterThan(80);
    expect(perLine).toBeLessThan(130);
  });

  it('pg-protocol writes into the chunks it is given (why the bench gives it private tails)', () => {
    // If this starts failing, pg-protocol stopped doing it and pgProtocolChunks() can go.
    const w = new Writer();
    for (const n of [30, 31, 29, 30]) encodeBackend(w, { type: 'CopyData', data: new Uint8Array(n).fill(n) });
    const original = w.take();
    const bytes = original.slice();
    const parser = new Parser();
    let seen = 0;
    for (const chunk of [
      Buffer.from(bytes.buffer, 0, 100),
      Buffer.from(bytes.buffer, 100, bytes.length - 100),
    ]) {
      parser.parse(chunk, () => seen++);
    }
    expect(seen).toBe(4);
    expect(Buffer.compare(bytes, original)).not.toBe(0);
  });

  it('expected tallies follow what each parser produces', () => {
    const s = dataRowStream(10);
    expect(expectedTally(s, 'pgconn').chars).toBe(0);
    expect(expectedTally(s, 'pgconn-text').chars).toBe(s.payloadChars);
    expect(expectedTally(s, 'pgconn-text-per-field').chars).toBe(s.payloadChars);
    expect(expectedTally(s, 'pg-protocol').bytes).toBe(0);
  });
});
