import { describe, expect, test } from 'bun:test';
import type { Admitter } from '../relay/network.ts';
import type { AdmissionOutcome } from '../store/intake-store.ts';
import { testAdmission } from '../store/test-admissions.ts';
import { ADMISSION_FAILURE_HOLD_MS, AdmissionHealth } from './admission-health.ts';

/** Test double of an admitter whose writes fail while `full` (the real path: runtime/bun.test.ts). */
class SwitchableAdmitterDouble implements Admitter {
  full = false;
  async admit(): Promise<AdmissionOutcome> {
    if (this.full) throw new Error('database or disk is full');
    return { kind: 'created', requestId: 'r', usedToday: 1 };
  }
}

describe('AdmissionHealth', () => {
  test('a failed admission holds for a while, and one stored clears it at once', async () => {
    let now = 1_000;
    const health = new AdmissionHealth(() => now);
    const inner = new SwitchableAdmitterDouble();
    const admitter = health.watch(inner);
    expect(health.failing()).toBeNull();
    inner.full = true;
    await expect(admitter.admit(testAdmission())).rejects.toThrow('full');
    expect(health.failing()).toEqual({ at: 1_000, reason: 'database or disk is full' });
    now += ADMISSION_FAILURE_HOLD_MS - 1;
    expect(health.failing()).not.toBeNull();
    now += 1; // nothing was asked since: a drained relay is not held down for good
    expect(health.failing()).toBeNull();
    await expect(admitter.admit(testAdmission())).rejects.toThrow('full');
    expect(health.failing()).not.toBeNull();
    inner.full = false;
    await admitter.admit(testAdmission());
    expect(health.failing()).toBeNull();
    // Every failure counted, however long ago (for an alert's increase(), past the 5 s /healthz holds).
    expect(health.failures).toBe(2);
  });
});
