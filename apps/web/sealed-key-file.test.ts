import { describe, expect, test } from 'bun:test';
import { NodeKey, openNodeKey, SynodError, sealNodeKey } from '@synod/shared';
import { checkSealedKey } from '../../browser-node/src/browser/key-store.ts';
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
    parseSealedKeyFile(text, checkSealedKey, 'key.json');
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
      const checked = parseSealedKeyFile(text, checkSealedKey);
      expect(checked).toEqual({ nodeId: key.nodeId, text: JSON.stringify(s) });
      expect((await openNodeKey(JSON.parse(checked.text), PASSPHRASE)).nodeId).toBe(key.nodeId);
    }
  });

  // Each edit is one `openNodeKey` refuses as KEYSTORE_MALFORMED: the page refuses it too, before any
  // passphrase, and names what is wrong.
  const edits: Array<[string, (v: Record<string, Record<string, unknown>>) => void, RegExp]> = [
    ['a field missing', (v) => delete v['cipher'], /cipher: is missing/],
    ['a field unknown', (v) => Object.assign(v, { seed: 'ab' }), /the file: Unrecognized key: "seed"/],
    [
      'a field named after an Object method',
      (v) => Object.assign(v, { constructor: 1 }),
      /the file: Unrecognized key: "constructor"/,
    ],
    [
      'a nested field unknown',
      (v) => Object.assign(v['kdf'] ?? {}, { dkLen: 32 }),
      /kdf: Unrecognized key: "dkLen"/,
    ],
    ['another version', (v) => Object.assign(v, { v: 2 }), /v: Invalid input: expected 1/],
    [
      'another kind',
      (v) => Object.assign(v, { kind: 'ssh-key' }),
      /kind: Invalid input: expected "synod-node-key"/,
    ],
    ['a node id in capitals', (v) => Object.assign(v, { nodeId: 'AB'.repeat(32) }), /nodeId: Invalid string/],
    ['a node id too short', (v) => Object.assign(v, { nodeId: 'ab' }), /nodeId: Invalid string/],
    ['scrypt too cheap', (v) => Object.assign(v['kdf'] ?? {}, { N: 2 ** 9 }), /kdf\.N: Too (small|big)/],
    ['scrypt too dear', (v) => Object.assign(v['kdf'] ?? {}, { N: 2 ** 21 }), /kdf\.N: Too (small|big)/],
    [
      'N not a power of two',
      (v) => Object.assign(v['kdf'] ?? {}, { N: 3 * 2 ** 10 }),
      /kdf\.N: must be a power of two/,
    ],
    [
      'scrypt memory over 256 MiB',
      (v) => Object.assign(v['kdf'] ?? {}, { N: 2 ** 19, r: 8 }),
      /kdf: scrypt's memory \(128 \* N \* r bytes\) must be at most 256 MiB/,
    ],
    ['p over 4', (v) => Object.assign(v['kdf'] ?? {}, { p: 5 }), /kdf\.p: Too big/],
    ['r out of bounds', (v) => Object.assign(v['kdf'] ?? {}, { r: 33 }), /kdf\.r: Too big/],
    ['p not an integer', (v) => Object.assign(v['kdf'] ?? {}, { p: 1.5 }), /kdf\.p: Invalid input/],
    ['p as a string', (v) => Object.assign(v['kdf'] ?? {}, { p: '1' }), /kdf\.p: Invalid input/],
    ['a short salt', (v) => Object.assign(v['kdf'] ?? {}, { salt: 'ab' }), /kdf\.salt: Invalid string/],
    ['another cipher', (v) => Object.assign(v['cipher'] ?? {}, { name: 'aes-128-gcm' }), /cipher\.name/],
    ['a short iv', (v) => Object.assign(v['cipher'] ?? {}, { iv: 'ab' }), /cipher\.iv: Invalid string/],
    ['data cut short', (v) => Object.assign(v['cipher'] ?? {}, { data: 'ab'.repeat(40) }), /cipher\.data/],
    ['kdf not an object', (v) => Object.assign(v, { kdf: 'scrypt' }), /kdf: Invalid input: expected object/],
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

  test('not JSON, not an object, or far larger than a sealed key', () => {
    expect(refusal('not json').message).toContain('(it is not JSON)');
    expect(refusal('[1, 2]').message).toContain('(the file: Invalid input: expected object');
    expect(refusal('null').message).toContain('(the file: Invalid input: expected object');
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
    const e = await readSealedKeyFile(big, checkSealedKey).catch((x: unknown) => x);
    expect((e as KeyFileError).code).toBe('KEY_FILE_MALFORMED');
    expect((e as KeyFileError).message).toStartWith('movie.mp4 is not a sealed Synod node key');
    expect(read).toBe(false);
    const { key, sealed: s } = await sealed();
    const good = new File([JSON.stringify(s, null, 2)], 'synod-node-key.json');
    expect((await readSealedKeyFile(good, checkSealedKey)).nodeId).toBe(key.nodeId);
  });
});
