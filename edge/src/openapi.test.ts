import { describe, expect, test } from 'bun:test';
import { RequestIdSchema } from '@synod/shared';
import { REQUEST_ID_PATTERN } from './openapi.ts';

describe('the OpenAPI document’s request id pattern', () => {
  test('takes exactly the ids the protocol takes', () => {
    const pattern = new RegExp(REQUEST_ID_PATTERN);
    const ids = [
      'ab'.repeat(32),
      'AB'.repeat(32),
      'ab'.repeat(31),
      `${'ab'.repeat(32)}0`,
      `31337:0x${'11'.repeat(20)}:7`,
      `${'9'.repeat(20)}:0x${'11'.repeat(20)}:${'9'.repeat(78)}`,
      `${'9'.repeat(21)}:0x${'11'.repeat(20)}:7`,
      `31337:0x${'11'.repeat(20)}:${'9'.repeat(79)}`,
      `31337:0x${'AA'.repeat(20)}:7`,
      `31337:${'11'.repeat(20)}:7`,
      `31337:0x${'11'.repeat(20)}:`,
      '',
    ];
    for (const id of ids) expect([id, pattern.test(id)]).toEqual([id, RequestIdSchema.safeParse(id).success]);
    expect(ids.filter((id) => pattern.test(id))).toHaveLength(3);
  });
});
