import { describe, expect, test } from 'bun:test';
import { MAX_SERVING_GROUPS, type ServingGroup, servingCount, usableGroups } from './serving-groups.ts';

const group = (models: string[], able: number, paused = 0, embedders = ['use-lite-512']): ServingGroup => ({
  models,
  embedders,
  able,
  paused,
});

describe('usableGroups (what a gateway publishes)', () => {
  test('keys naming made-up models each make a group; cut to the served models they are one, counted whole', () => {
    // 100 keys, each with the served model and a model of its own making, beside 3 honest nodes.
    const sybils = Array.from({ length: 100 }, (_, i) => group(['stories260K', `made-up-${i}`], 1));
    const groups = [group(['stories260K'], 3), ...sybils, group([`made-up-only`], 5)];
    expect(groups.length).toBeGreaterThan(MAX_SERVING_GROUPS);
    const usable = usableGroups(groups, new Set(['stories260K']), new Set(['use-lite-512']));
    expect(usable).toEqual([group(['stories260K'], 103)]);
    // Counted as before the cut for every request the relay can take.
    const request = { acceptedModels: ['stories260K'], frame: { embeddingModel: { id: 'use-lite-512' } } };
    expect(servingCount(usable, request as never)).toBe(servingCount(groups, request as never));
  });

  test('embedders the relay does not pin are cut too; a group left with nothing goes; paused nodes are kept apart', () => {
    const groups = [
      group(['m1', 'm2'], 1, 1, ['use-lite-512', 'other']),
      group(['m1'], 2, 0, ['other']),
      group(['m2', 'm1'].sort(), 0, 2),
    ];
    expect(usableGroups(groups, new Set(['m1', 'm2']), new Set(['use-lite-512']))).toEqual([
      group(['m1', 'm2'], 1, 3),
    ]);
  });
});
