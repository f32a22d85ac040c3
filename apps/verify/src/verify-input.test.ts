import { describe, expect, test } from 'bun:test';
import { parseDigest, readVerifyInput, shownValue, VerifyInputError } from './verify-input.ts';

const D = 'a'.repeat(64);
const R = 'b'.repeat(64);

describe('readVerifyInput', () => {
  test('an archived request that was never sealed (transcript null) is nothing to verify, said as such', () => {
    const line = JSON.stringify({
      v: 1,
      requestId: 'ab'.repeat(32),
      status: 'expired',
      error: 'DECLINED',
      transcript: null,
    });
    let caught: unknown;
    try {
      readVerifyInput(line);
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(VerifyInputError);
    expect((caught as VerifyInputError).code).toBe('VERIFY_INPUT_INVALID');
    expect((caught as Error).message).toBe(
      'no transcript: the request was never sealed, so it has no verdict to re-derive (status expired, error DECLINED)',
    );
  });

  test('a bare transcript, or one inside a relay answer or a POST /v1/verify body', () => {
    const t = { v: 1, requestId: 'x', packets: [] };
    expect(readVerifyInput(JSON.stringify(t))).toEqual({ transcript: t, claimed: {} });
    expect(
      readVerifyInput(JSON.stringify({ ok: true, verdictDigest: D, transcriptRoot: R, transcript: t })),
    ).toEqual({
      transcript: t,
      claimed: { verdictDigest: D, root: R },
    });
    expect(
      readVerifyInput(JSON.stringify({ transcript: t, expectedVerdictDigest: D, expectedRoot: R })),
    ).toEqual({
      transcript: t,
      claimed: { verdictDigest: D, root: R },
    });
    // A claim is compared whatever its form: a digest in another case or with 0x as the digest, anything
    // else as given (it then differs from the derived digest), never dropped; null is no claim.
    expect(
      readVerifyInput(
        JSON.stringify({ transcript: t, verdictDigest: `0x${D.toUpperCase()}`, transcriptRoot: null }),
      ).claimed,
    ).toEqual({ verdictDigest: D });
    expect(
      readVerifyInput(JSON.stringify({ transcript: t, verdictDigest: 'FFFF', transcriptRoot: 7 })).claimed,
    ).toEqual({ verdictDigest: 'FFFF', root: '7' });
  });

  test('what a source says beside the transcript: its request id, status and verdict to compare, a signed verdict packet to check', () => {
    const t = { v: 1, requestId: 'x', packets: [] };
    const verdict = { status: 'accepted', accepted: [] };
    expect(readVerifyInput(JSON.stringify({ transcript: t, requestId: 'x', verdict })).claimed).toEqual({
      requestId: 'x',
      verdict,
    });
    // An archive line: the coordinator's signed verdict packet, checked as a packet, and the status.
    const packet = { v: 1, type: 'verdict', from: 'a'.repeat(64), body: {}, sig: 'b'.repeat(128) };
    const line = readVerifyInput(JSON.stringify({ transcript: t, status: 'verdict', verdict: packet }));
    expect(line.claimed).toEqual({ status: 'verdict' });
    expect(line.verdictPacket).toEqual(packet);
    // A relay's answer (GET /v1/verify/:id): the verdict object to compare, and the signed packet beside it.
    const answer = readVerifyInput(JSON.stringify({ transcript: t, verdict, verdictPacket: packet }));
    expect(answer.claimed).toEqual({ verdict });
    expect(answer.verdictPacket).toEqual(packet);
    // Anything but a string is compared as its JSON (and differs), never dropped.
    expect(readVerifyInput(JSON.stringify({ transcript: t, requestId: 7 })).claimed).toEqual({
      requestId: '7',
    });
  });

  test('a claim nested deeper than JSON.stringify can write back is compared as such, not a crash', () => {
    const t = { v: 1, requestId: 'x', packets: [] };
    const deep = `${'['.repeat(200_000)}${']'.repeat(200_000)}`;
    const text = `{"transcript":${JSON.stringify(t)},"requestId":${deep},"verdictDigest":${deep}}`;
    expect(readVerifyInput(text).claimed).toEqual({
      requestId: '(a value too deeply nested to show)',
      verdictDigest: '(a value too deeply nested to show)',
    });
    // Anything else shown as its JSON, cut at 200 characters.
    expect(shownValue({ a: 'b'.repeat(300) })).toBe(
      `${JSON.stringify({ a: 'b'.repeat(300) }).slice(0, 200)}…`,
    );
  });

  test('a byte order mark before the JSON is not part of it', () => {
    const t = { v: 1, requestId: 'x', packets: [] };
    expect(readVerifyInput(`\uFEFF${JSON.stringify(t)}`)).toEqual({ transcript: t, claimed: {} });
  });

  test('a member named twice in any object is refused, naming it and where: readers differ on which value they keep', () => {
    const t = '{"v":1,"requestId":"x","packets":[{"type":"reveal","body":{"output":"A","output":"B"}}]}';
    expect(() => readVerifyInput(t, 'the file t.json')).toThrow(
      'the file t.json names "output" twice in packets[0].body',
    );
    expect(() =>
      readVerifyInput(
        `{"transcript":{"v":1,"requestId":"x","packets":[]},"verdictDigest":"${D}","verdictDigest":"${R}"}`,
      ),
    ).toThrow('the input names "verdictDigest" twice in (root)');
    expect(() => readVerifyInput('\uFEFF{"packets":[],"packets":[]}')).toThrow(VerifyInputError);
  });

  test.each([
    ['not json', 'not JSON'],
    ['[1,2]', 'expected a transcript'],
    ['null', 'expected a transcript'],
    ['{"ok":false,"error":{}}', 'no transcript here'],
    [
      '{"v":1,"requestId":"x","packets":[],"transcript":{}}',
      'both a bare transcript (packets) and a transcript member',
    ],
    // Shaped as no transcript at all, bare or as a member: not verified (exit code 2), as `5` or `{}`.
    ['{"packets":5}', 'no transcript here: the input is an object without a packets array'],
    ['{"transcript":"x"}', 'no transcript here: its transcript member is a string'],
    ['{"transcript":{}}', 'no transcript here: its transcript member is an object without a packets array'],
    ['{"transcript":[]}', 'no transcript here: its transcript member is an array'],
    // Null means "never sealed" only in an archive line (which names its request and status).
    ['{"transcript":null}', 'no transcript here: its transcript member is null'],
    ['{"transcript":null,"status":"expired"}', 'no transcript here: its transcript member is null'],
  ])('%p is not something to verify', (text, message) => {
    expect(() => readVerifyInput(text)).toThrow(VerifyInputError);
    expect(() => readVerifyInput(text)).toThrow(message);
  });
});

describe('parseDigest', () => {
  test('64 hex digits, 0x optional, any case; anything else is refused', () => {
    expect(parseDigest('--expect-digest', `0x${D.toUpperCase()}`)).toBe(D);
    expect(parseDigest('--expect-digest', D)).toBe(D);
    expect(() => parseDigest('--expect-root', 'abc')).toThrow('--expect-root must be 64 hex digits');
  });
});
