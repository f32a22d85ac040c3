import { describe, expect, test } from 'bun:test';
import { NodeKey, openNodeKey, SynodError, sealNodeKey } from '@synod/shared';
import {
  KeyFileError,
  MAX_KEY_FILE_BYTES,
  parseSealedKeyFile,
  readSealedKeyFile,
} from './sealed-key-file.ts';

const PASSPHRASE = 'a passphrase only this test knows';

async function sealed(N = 2 ** 10) {
  const key = await NodeKey.fromSeed(new Uint8Array(32).fill(7));
  return { key, sealed: await sealNodeKey(key, PASSPHRASE, { N }) };
}

function refusal(text: string): KeyFileError {
  try {
    parseSealedKeyFile(text, 'key.json');
  } catch (e) {
    if (e instanceof KeyFileError) return e;
    throw e;
  }
  throw new Error(`accepted: ${text}`);
}

/** A deep copy of `value` with `edit` applied. */
function edited(value: object, edit: (v: Record<string, Record<string, unknown>>) => void): string {
  const copy = JSON.parse(JSON.stringify(value)) as Record<string, Record<string, unknown>>;
  edit(copy);
  return JSON.stringify(copy);
}

describe('a sealed key file, checked without its passphrase', () => {
  test('what sealNodeKey writes passes, compact or pretty-printed as the CLI writes it, and opens as it is stored', async () => {
    const { key, sealed: s } = await sealed();
    for (const text of [JSON.stringify(s), `${JSON.stringify(s, null, 2)}\n`]) {
      const checked = parseSealedKeyFile(text);
      expect(checked).toEqual({ nodeId: key.nodeId, text: JSON.stringify(s) });
      expect((await openNodeKey(JSON.parse(checked.text), PASSPHRASE)).nodeId).toBe(key.nodeId);
    }
  });

  // Each edit is one `openNodeKey` refuses as KEYSTORE_MALFORMED: the page refuses it too, before any
  // passphrase, and names what is wrong.
  const edits: Array<[string, (v: Record<string, Record<string, unknown>>) => void, RegExp]> = [
    ['a field missing', (v) => delete v['cipher'], /cipher: is missing/],
    ['a field unknown', (v) => Object.assign(v, { seed: 'ab' }), /seed: is not a field/],
    [
      'a field named after an Object method',
      (v) => Object.assign(v, { constructor: 1 }),
      /constructor: is not/,
    ],
    ['a nested field unknown', (v) => Object.assign(v['kdf'] ?? {}, { dkLen: 32 }), /kdf\.dkLen: is not/],
    ['another version', (v) => Object.assign(v, { v: 2 }), /v: must be 1/],
    ['another kind', (v) => Object.assign(v, { kind: 'ssh-key' }), /kind: must be "synod-node-key"/],
    ['a node id in capitals', (v) => Object.assign(v, { nodeId: 'AB'.repeat(32) }), /nodeId: must be 64/],
    ['a node id too short', (v) => Object.assign(v, { nodeId: 'ab' }), /nodeId: must be 64/],
    ['scrypt too cheap', (v) => Object.assign(v['kdf'] ?? {}, { N: 2 ** 9 }), /kdf\.N: must be/],
    ['scrypt too dear', (v) => Object.assign(v['kdf'] ?? {}, { N: 2 ** 21 }), /kdf\.N: must be/],
    ['r out of bounds', (v) => Object.assign(v['kdf'] ?? {}, { r: 33 }), /kdf\.r: must be an integer/],
    ['p not an integer', (v) => Object.assign(v['kdf'] ?? {}, { p: 1.5 }), /kdf\.p: must be an integer/],
    ['p as a string', (v) => Object.assign(v['kdf'] ?? {}, { p: '1' }), /kdf\.p: must be an integer/],
    ['a short salt', (v) => Object.assign(v['kdf'] ?? {}, { salt: 'ab' }), /kdf\.salt: must be/],
    ['another cipher', (v) => Object.assign(v['cipher'] ?? {}, { name: 'aes-128-gcm' }), /cipher\.name/],
    ['a short iv', (v) => Object.assign(v['cipher'] ?? {}, { iv: 'ab' }), /cipher\.iv: must be 24/],
    ['data cut short', (v) => Object.assign(v['cipher'] ?? {}, { data: 'ab'.repeat(40) }), /cipher\.data/],
    ['kdf not an object', (v) => Object.assign(v, { kdf: 'scrypt' }), /kdf: must be a JSON object/],
  ];
  for (const [what, edit, why] of edits)
    test(`refused as openNodeKey refuses it: ${what}`, async () => {
      const { sealed: s } = await sealed();
      const text = edited(s, edit);
      const e = refusal(text);
      expect(e.code).toBe('KEY_FILE_MALFORMED');
      expect(e.message).toStartWith('key.json is not a sealed Synod node key (');
      expect(e.message).toMatch(why);
      const opened = await openNodeKey(JSON.parse(text), PASSPHRASE).catch((x: unknown) => x);
      expect(opened).toBeInstanceOf(SynodError);
      expect((opened as SynodError).code).toBe('KEYSTORE_MALFORMED');
    });

  test('a scrypt cost that is not a power of two is refused here; openNodeKey finds out only when deriving', async () => {
    const { sealed: s } = await sealed();
    const text = edited(s, (v) => Object.assign(v['kdf'] ?? {}, { N: 3 * 2 ** 10 }));
    expect(refusal(text).message).toMatch(/kdf\.N: must be a power of two/);
    await expect(openNodeKey(JSON.parse(text), PASSPHRASE)).rejects.toThrow();
  });

  test('not JSON, not an object, or far larger than a sealed key', () => {
    expect(refusal('not json').message).toContain('(it is not JSON)');
    expect(refusal('[1, 2]').message).toContain('(the file: must be a JSON object)');
    expect(refusal('null').message).toContain('(the file: must be a JSON object)');
    expect(refusal(' '.repeat(MAX_KEY_FILE_BYTES + 1)).message).toContain('larger than any sealed key');
  });

  test('a chosen file is refused by its size before it is read', async () => {
    const big = new File([new Uint8Array(MAX_KEY_FILE_BYTES + 1)], 'movie.mp4');
    let read = false;
    Object.defineProperty(big, 'text', {
      value: () => {
        read = true;
        return Promise.resolve('');
      },
    });
    const e = await readSealedKeyFile(big).catch((x: unknown) => x);
    expect((e as KeyFileError).code).toBe('KEY_FILE_MALFORMED');
    expect((e as KeyFileError).message).toStartWith('movie.mp4 is not a sealed Synod node key');
    expect(read).toBe(false);
    const { key, sealed: s } = await sealed();
    const good = new File([JSON.stringify(s, null, 2)], 'synod-node-key.json');
    expect((await readSealedKeyFile(good)).nodeId).toBe(key.nodeId);
  });
});
