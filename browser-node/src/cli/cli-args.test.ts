import { expect, test } from 'bun:test';
import { parseArgs } from 'node:util';
import { forgottenValueMessage, got, joinNegativeNumbers } from './cli-args.ts';

test('a negative number is joined to the numeric flag before it; anything else is left as it is', () => {
  const numeric = new Set(['tcp-port', 'max-queue', 'quota', 'n']);
  expect(
    joinNegativeNumbers(['--tcp-port', '-1', '--quiet', '--db', 'a.db', '-x', '--n=-2'], numeric),
  ).toEqual(['--tcp-port=-1', '--quiet', '--db', 'a.db', '-x', '--n=-2']);
  expect(joinNegativeNumbers(['--max-queue', '-5'], numeric)).toEqual(['--max-queue=-5']);
  expect(joinNegativeNumbers(['--label', '--quota', '5'], numeric)).toEqual(['--label', '--quota', '5']);
  // A text flag keeps parseArgs' reading: its value was forgotten, not given as "-1".
  expect(joinNegativeNumbers(['--identity', '-1'], numeric)).toEqual(['--identity', '-1']);
  expect(joinNegativeNumbers(['--label', '-5', '--quota', '-5'], numeric)).toEqual([
    '--label',
    '-5',
    '--quota=-5',
  ]);
});

test("parseArgs' forgotten value is one line naming the flag; other errors are not rewritten", () => {
  const parse = (args: string[]) => {
    try {
      parseArgs({
        args,
        strict: true,
        options: { identity: { type: 'string' }, quiet: { type: 'boolean' } },
      });
    } catch (e) {
      return forgottenValueMessage(e, args);
    }
    return 'parsed';
  };
  expect(parse(['--identity', '--quiet'])).toBe(
    '--identity needs a value, got "--quiet" (a value starting with a dash is written --identity=-…)',
  );
  expect(parse(['--identity', '-1'])).toBe(
    '--identity needs a value, got "-1" (a value starting with a dash is written --identity=-…)',
  );
  expect(parse(['--nope'])).toBeNull();
  expect(parse(['--identity', 'id.json'])).toBe('parsed');
  expect(forgottenValueMessage(new Error('x'), [])).toBeNull();
  expect(got('a\u0000b')).toBe('got "a\\u0000b"');
  expect(got('x'.repeat(100))).toBe(`got "${'x'.repeat(80)}…"`);
});
