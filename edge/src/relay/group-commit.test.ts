import { describe, expect, test } from 'bun:test';
import type { RequestBody } from '@synod/shared';
import type { Admission, AdmissionOutcome } from '../store/intake-store.ts';
import { GroupCommit } from './group-commit.ts';

/** A request body stand-in: GroupCommit only passes admissions through to its writer. */
const adm = (id: string): Admission => ({
  body: { requestId: id } as RequestBody,
  callerId: 'key_a',
  quotaPerDay: 10,
  day: '2026-11-22',
});

/**
 * `RecordingWriter`: a test double of `IntakeStore.admit` (tested against libSQL in
 * store/intake-store.test.ts) that records each batch and can be held open or made to fail.
 */
class RecordingWriter {
  batches: string[][] = [];
  gate: Promise<void> | undefined;
  /** Hold every batch written from now on until the returned function is called. */
  hold(): () => void {
    let open: () => void = () => undefined;
    this.gate = new Promise((r) => {
      open = r;
    });
    return () => {
      this.gate = undefined;
      open();
    };
  }
  failNext = false;
  write = async (batch: readonly Admission[]): Promise<AdmissionOutcome[]> => {
    this.batches.push(batch.map((a) => a.body.requestId));
    if (this.gate) await this.gate;
    if (this.failNext) {
      this.failNext = false;
      throw new Error('disk full');
    }
    return batch.map((a) => ({ kind: 'created', requestId: a.body.requestId, usedToday: 1 }));
  };
}

describe('GroupCommit', () => {
  test('admissions of one event-loop turn share one transaction; each gets its own outcome', async () => {
    const w = new RecordingWriter();
    const g = new GroupCommit(w.write);
    const out = await Promise.all(['a', 'b', 'c'].map((id) => g.admit(adm(id))));
    expect(w.batches).toEqual([['a', 'b', 'c']]);
    expect(out.map((o) => (o.kind === 'created' ? o.requestId : ''))).toEqual(['a', 'b', 'c']);
    expect(g.stats()).toEqual({ batches: 1, admissions: 3, largest: 3 });
  });

  test('what arrives while a batch is being written goes into the next batch, in order', async () => {
    const w = new RecordingWriter();
    const release = w.hold();
    const g = new GroupCommit(w.write);
    const first = g.admit(adm('a'));
    await Bun.sleep(1);
    expect(w.batches).toEqual([['a']]);
    const later = ['b', 'c', 'd'].map((id) => g.admit(adm(id)));
    await Bun.sleep(1);
    expect(w.batches).toEqual([['a']]);
    release();
    await Promise.all([first, ...later]);
    expect(w.batches).toEqual([['a'], ['b', 'c', 'd']]);
  });

  test('a failed transaction rejects every admission of its batch and no other', async () => {
    const w = new RecordingWriter();
    const g = new GroupCommit(w.write);
    w.failNext = true;
    const failed = await Promise.allSettled([g.admit(adm('a')), g.admit(adm('b'))]);
    expect(failed.map((r) => r.status)).toEqual(['rejected', 'rejected']);
    const ok = await g.admit(adm('c'));
    expect(ok).toEqual({ kind: 'created', requestId: 'c', usedToday: 1 });
    expect(g.stats().admissions).toBe(1);
  });

  test('batches are split at maxBatch; a writer answering the wrong count fails its batch', async () => {
    const w = new RecordingWriter();
    const g = new GroupCommit(w.write, { maxBatch: 2 });
    await Promise.all(['a', 'b', 'c', 'd', 'e'].map((id) => g.admit(adm(id))));
    expect(w.batches).toEqual([['a', 'b'], ['c', 'd'], ['e']]);

    const short = new GroupCommit(async () => []);
    await expect(short.admit(adm('x'))).rejects.toThrow('got 0 outcomes');
  });

  test('flushAt hands a batch over as soon as it is full, without waiting for the end of the turn', async () => {
    const w = new RecordingWriter();
    const g = new GroupCommit(w.write, { flushAt: 2 });
    const all = ['a', 'b', 'c'].map((id) => g.admit(adm(id)));
    expect(w.batches).toEqual([['a', 'b']]);
    await Promise.all(all);
    expect(w.batches).toEqual([['a', 'b'], ['c']]);
  });

  test('pipelined: the next batch is handed over while the previous one is still being written', async () => {
    const w = new RecordingWriter();
    const release = w.hold();
    const g = new GroupCommit(w.write, { pipelined: true, flushAt: 2 });
    const first = ['a', 'b'].map((id) => g.admit(adm(id)));
    const second = ['c', 'd', 'e'].map((id) => g.admit(adm(id)));
    await Bun.sleep(1);
    // Held open, yet every admission was handed over: [a b], [c d] when full, [e] at the end of the turn.
    expect(w.batches).toEqual([['a', 'b'], ['c', 'd'], ['e']]);
    release();
    const out = await Promise.all([...first, ...second]);
    expect(out.map((o) => (o.kind === 'created' ? o.requestId : ''))).toEqual(['a', 'b', 'c', 'd', 'e']);
    expect(g.stats()).toEqual({ batches: 3, admissions: 5, largest: 2 });
  });

  test('not pipelined: a full batch still waits for the one being written', async () => {
    const w = new RecordingWriter();
    const release = w.hold();
    const g = new GroupCommit(w.write, { flushAt: 2 });
    const all = ['a', 'b', 'c', 'd', 'e'].map((id) => g.admit(adm(id)));
    await Bun.sleep(1);
    expect(w.batches).toEqual([['a', 'b']]);
    release();
    await Promise.all(all);
    expect(w.batches).toEqual([
      ['a', 'b'],
      ['c', 'd', 'e'],
    ]);
  });
});
