import { describe, expect, test } from 'bun:test';
import { buildRequest } from '../inference-input.ts';
import { intakeEntry } from './intake-store.ts';
import { decodeBatch, encodeBatch } from './intake-writer-protocol.ts';
import { TEST_EMBEDDER, testAdmission } from './test-admissions.ts';

describe('admission batches between threads', () => {
  test('entries come back as they went, bodies byte for byte', () => {
    const built = buildRequest(
      { messages: [{ role: 'user', content: 'line one\nline "two"\u2028 and a snowman \u2603' }] },
      { knownModels: new Set(['m']), defaultModels: ['m'], embedders: [TEST_EMBEDDER] },
      5,
      (n) => crypto.getRandomValues(new Uint8Array(n)),
    );
    const entries = [
      intakeEntry(testAdmission()),
      intakeEntry({ ...testAdmission(), body: built.body, bodyJson: built.json }),
      intakeEntry(
        testAdmission({ idempotency: { key: 'k\nwith a line break', bodyDigest: 'd'.repeat(64) } }),
      ),
    ];
    const decoded = decodeBatch(encodeBatch(entries));
    expect(decoded).toEqual(entries);
    expect(JSON.parse(decoded[1]?.bodyJson ?? '')).toEqual(JSON.parse(JSON.stringify(built.body)));
    expect(decodeBatch(encodeBatch([]))).toEqual([]);
  });

  test('a body text with a raw line break is refused; a malformed batch is a TypeError', () => {
    const e = intakeEntry(testAdmission());
    expect(() => encodeBatch([{ ...e, bodyJson: '{\n}' }])).toThrow(TypeError);
    const good = encodeBatch([e]);
    for (const bad of [
      good.slice(0, -1),
      `${good}x\n`,
      good.replace(/^\[/, '["x",'),
      'null\n{}\n',
      '{not json\n{}\n',
    ]) {
      expect(() => decodeBatch(bad)).toThrow(TypeError);
    }
  });
});
