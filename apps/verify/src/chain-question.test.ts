import { describe, expect, test } from 'bun:test';
import { type Asked, questionMismatches } from './chain-question.ts';

const TX = `0x${'ab'.repeat(32)}` as const;
const ASKED: Asked = {
  prompt: 'Lily found a shell',
  acceptedModels: ['stories260K'],
  maxTokens: 12,
  temperatureCenti: 70,
  quorum: 3,
  txHash: TX,
};

/** A transcript whose request is the chain request the watcher makes of ASKED, with `over` applied. */
function transcriptOf(over: { params?: Record<string, unknown>; frame?: Record<string, unknown> } = {}) {
  return {
    packets: [
      {
        type: 'request',
        body: {
          prompt: ASKED.prompt,
          acceptedModels: [...ASKED.acceptedModels],
          params: { maxTokens: 12, temperature: 0.7, ...over.params },
          frame: {
            quorum: 3,
            maxCommits: 3,
            secDistance: 0.15,
            secPercentage: 0.6,
            maxTimeMs: 30_000,
            revealWindowMs: 10_000,
            embeddingModel: { id: 'use-lite-512', fileHash: 'f'.repeat(64), bits: 512 },
            ...over.frame,
          },
          origin: { kind: 'chain', txHash: TX },
        },
      },
    ],
  };
}

describe('questionMismatches: the transcript against the question asked on chain', () => {
  test("the chain watcher's request of the question: nothing differs (whatever embedder is pinned)", () => {
    expect(questionMismatches(transcriptOf(), ASKED)).toEqual([]);
    const other = { id: 'e5-small', fileHash: 'e'.repeat(64), bits: 384 };
    expect(questionMismatches(transcriptOf({ frame: { embeddingModel: other } }), ASKED)).toEqual([]);
  });

  test('a looser frame than a chain request gets is named, field by field', () => {
    const loose = transcriptOf({
      frame: {
        secPercentage: 0.01,
        secDistance: 0.5,
        maxCommits: 9,
        revealWindowMs: 300_000,
        maxTimeMs: 600_000,
      },
    });
    expect(questionMismatches(loose, ASKED)).toEqual([
      "the transcript's frame has maxCommits 9, not the 3 of a chain request",
      "the transcript's frame has secDistance 0.5, not the 0.15 of a chain request",
      "the transcript's frame has secPercentage 0.01, not the 0.6 of a chain request",
      "the transcript's frame has maxTimeMs 600000, not the 30000 of a chain request",
      "the transcript's frame has revealWindowMs 300000, not the 10000 of a chain request",
    ]);
  });

  test('sampling the question did not ask for (seed, topP, topK) is named', () => {
    expect(questionMismatches(transcriptOf({ params: { seed: 7, topK: 1 } }), ASKED)).toEqual([
      "the transcript's request sets seed, topK, which a chain request does not",
    ]);
  });

  test('another prompt, models, parameters, quorum or transaction are named; no event is named too', () => {
    const t = transcriptOf({ params: { maxTokens: 13 }, frame: { quorum: 1, maxCommits: 1 } });
    expect(
      questionMismatches(t, {
        ...ASKED,
        prompt: 'Ben',
        acceptedModels: ['x'],
        txHash: `0x${'cd'.repeat(32)}`,
      }),
    ).toEqual([
      'the transcript answers another prompt than the one asked on chain',
      'the transcript accepts other models than the ones asked for on chain',
      'the transcript was generated with other parameters than the ones asked for on chain',
      "the transcript's quorum is 1, not the 3 asked for on chain",
      "the transcript's frame has maxCommits 1, not the 3 of a chain request",
      `the transcript's request names transaction ${TX}, not 0x${'cd'.repeat(32)}`,
    ]);
    expect(questionMismatches(transcriptOf(), undefined)).toEqual([
      'the oracle has no LLMRequested event for this request number',
    ]);
  });
});
