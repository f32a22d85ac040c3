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
    expect(await health.failing()).toBeNull();
    inner.full = true;
    await expect(admitter.admit(testAdmission())).rejects.toThrow('full');
    expect(await health.failing()).toEqual({ at: 1_000, reason: 'database or disk is full' });
    now += ADMISSION_FAILURE_HOLD_MS - 1;
    expect(await health.failing()).not.toBeNull();
    now += 1; // no probe to ask the database with: a drained relay is not held down for good
    expect(await health.failing()).toBeNull();
    await expect(admitter.admit(testAdmission())).rejects.toThrow('full');
    expect(await health.failing()).not.toBeNull();
    inner.full = false;
    await admitter.admit(testAdmission());
    expect(await health.failing()).toBeNull();
    // Every failure counted, however long ago (for an alert's increase(), past the 5 s /healthz holds).
    expect(health.failures).toBe(2);
  });

  test('past the hold, the probe write decides: failing, held again from then; written, cleared', async () => {
    let now = 1_000;
    const health = new AdmissionHealth(() => now);
    const inner = new SwitchableAdmitterDouble();
    const admitter = health.watch(inner);
    let probes = 0;
    const probe = async () => {
      probes++;
      if (inner.full) throw new Error('SQLITE_FULL: database or disk is full');
    };
    inner.full = true;
    await expect(admitter.admit(testAdmission())).rejects.toThrow('full');
    // Within the hold the probe is not tried.
    expect(await health.failing(probe)).toMatchObject({ at: 1_000 });
    expect(probes).toBe(0);
    now += ADMISSION_FAILURE_HOLD_MS;
    // Still full: the probe fails, and the failure holds again from now, said as the probe's.
    expect(await health.failing(probe)).toEqual({
      at: now,
      reason: 'SQLITE_FULL: database or disk is full',
      probe: true,
    });
    expect(probes).toBe(1);
    // Asked again within the new hold: no second probe.
    now += 1_000;
    expect(await health.failing(probe)).not.toBeNull();
    expect(probes).toBe(1);
    // Room again, and still no admission sent (the relay out of rotation): the probe clears it.
    inner.full = false;
    now += ADMISSION_FAILURE_HOLD_MS;
    expect(await health.failing(probe)).toBeNull();
    expect(probes).toBe(2);
    // The probe's failures are not admissions': only the one admission counted.
    expect(health.failures).toBe(1);
  });

  test('probes asked together are one write; an admission meanwhile says more than the probe', async () => {
    let now = 1_000;
    const health = new AdmissionHealth(() => now);
    const inner = new SwitchableAdmitterDouble();
    const admitter = health.watch(inner);
    inner.full = true;
    await expect(admitter.admit(testAdmission())).rejects.toThrow('full');
    now += ADMISSION_FAILURE_HOLD_MS;
    let release: () => void = () => undefined;
    let probes = 0;
    const probe = () => {
      probes++;
      return new Promise<void>((_, reject) => {
        release = () => reject(new Error('SQLITE_FULL: database or disk is full'));
      });
    };
    const a = health.failing(probe);
    const b = health.failing(probe);
    expect(probes).toBe(1);
    // An admission stored while the probe is under way: the database took it.
    inner.full = false;
    await admitter.admit(testAdmission());
    release();
    expect(await a).toBeNull();
    expect(await b).toBeNull();
  });

  test('a probe that never answers fails within its timeout: /healthz is not held', async () => {
    let now = 1_000;
    const health = new AdmissionHealth(() => now, { probeTimeoutMs: 50 });
    const inner = new SwitchableAdmitterDouble();
    inner.full = true;
    await expect(health.watch(inner).admit(testAdmission())).rejects.toThrow('full');
    now += ADMISSION_FAILURE_HOLD_MS;
    const failing = await health.failing(() => new Promise<void>(() => undefined));
    expect(failing).toMatchObject({ probe: true });
    expect(failing?.reason).toStartWith('PROBE_TIMEOUT: the write probe got no answer within 50 ms');
  });
});
