import { describe, expect, test } from 'bun:test';
import { SynodError, type TranscriptCheck } from '@synod/shared';
import { compare, formatReport, reportJson } from './report.ts';

const failed: TranscriptCheck = {
  ok: false,
  error: new SynodError('TRANSCRIPT_INVALID', 'the transcript is malformed', {
    details: { issues: Array.from({ length: 25 }, (_, i) => ({ check: 'SHAPE', message: `issue ${i}` })) },
  }),
};

describe('compare and formatReport', () => {
  test('a transcript that does not hold fails every comparison, and at most 20 issues are listed', () => {
    const r = compare(failed, { expectDigest: 'a'.repeat(64), claimed: { root: 'b'.repeat(64) } });
    expect(r.ok).toBe(false);
    expect(r.comparisons.map((c) => [c.what, c.match])).toEqual([
      ['--expect-digest', false],
      ["the source's transcript root", false],
    ]);
    const text = formatReport(r);
    expect(text).toContain('the transcript does NOT hold: TRANSCRIPT_INVALID');
    expect(text).toContain('issue 19');
    expect(text).not.toContain('issue 20');
    expect(text).toContain('… and 5 more');
    expect(text).toContain('derived (nothing: the transcript does not hold)');
    expect(reportJson(r)).toMatchObject({ ok: false, error: { code: 'TRANSCRIPT_INVALID' } });
  });

  test('nothing given, nothing compared', () => {
    expect(compare(failed, { claimed: {} }).comparisons).toEqual([]);
  });
});
