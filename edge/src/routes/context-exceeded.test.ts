import { expect, test } from 'bun:test';
import type { RequestDetail } from '../store/history-store.ts';
import { chatParamNames, contextExceeded, quorumNotMetHint, renamePaths } from './openai.ts';

/** What the chat route says of a request the nodes declined, and of one short of its quorum. */
const decline = (nodeId: string, promptTokens: number, contextTokens: number, model = 'stories260K') => ({
  id: `${nodeId}-decline`,
  packet: {
    from: nodeId,
    body: {
      model: { id: model, fileHash: 'ab'.repeat(32) },
      reason: 'context-exceeded',
      promptTokens,
      contextTokens,
    },
  },
});
const detail = (declines: ReturnType<typeof decline>[], input: 'prompt' | 'messages' = 'messages') =>
  ({
    requestId: 'r1',
    declines,
    commits: [],
    request: {
      body: {
        frame: { quorum: 3, maxTimeMs: 1_000 },
        params: { maxTokens: 2_000, temperature: 0 },
        ...(input === 'prompt' ? { prompt: 'x' } : { messages: [{ role: 'user', content: 'x' }] }),
      },
    },
  }) as unknown as RequestDetail;

test("OpenAI's message, by the decline closest to fitting; every decline in details", () => {
  const e = contextExceeded(
    detail([decline('a', 6015, 2048), decline('b', 6015, 2048), decline('c', 5990, 4096, 'big')]),
  );
  expect(e).toMatchObject({ status: 400, code: 'CONTEXT_LENGTH_EXCEEDED' });
  expect(e.message).toBe(
    "This model's maximum context length is 4096 tokens. However, your messages resulted in 5990 tokens (big, as 3 nodes said). Please reduce the length of the messages.",
  );
  expect((e.details?.['declines'] as unknown[] | undefined)?.length).toBe(3);
});

test('where the relay vouches for some decliners, a stranger’s made-up numbers are neither quoted nor counted', () => {
  const forged = decline('stranger', 100_000_000, 100_000_000);
  const e = contextExceeded(
    detail([forged, decline('a', 6015, 2048), decline('b', 6015, 2048)]),
    (nodeId) => nodeId !== 'stranger',
  );
  expect(e.message).toContain('maximum context length is 2048 tokens');
  expect(e.message).toContain('as 2 nodes said');
  expect((e.details?.['declines'] as { nodeId: string }[] | undefined)?.map((d) => d.nodeId)).toEqual([
    'a',
    'b',
  ]);
});

test('a prompt is a prompt (not messages), and with no decline of the kind known the message still reads', () => {
  expect(contextExceeded(detail([decline('a', 600, 512)], 'prompt')).message).toBe(
    "This model's maximum context length is 512 tokens. However, your prompt resulted in 600 tokens (stories260K, as 1 node said). Please reduce the length of the prompt.",
  );
  expect(contextExceeded(detail([], 'prompt')).message).toBe(
    "the nodes declined the request: its prompt does not fit the model's context",
  );
});

test('QUORUM_NOT_MET says how many committed, and how many declined when some did', () => {
  expect(quorumNotMetHint(detail([]))).toStartWith('0 nodes committed of the quorum of 3 asked: ');
  expect(quorumNotMetHint(detail([decline('a', 600, 512)]))).toStartWith(
    "0 nodes committed of the quorum of 3 asked and 1 declined it (longer than their model's context: see the request's declines): ",
  );
});

test('QUORUM_NOT_MET names max_tokens against maxTimeMs, first when no node committed, as the caller sent them', () => {
  const none = renamePaths(quorumNotMetHint(detail([])), chatParamNames('max_tokens'));
  expect(none).toContain(
    'by their own estimate of writing up to max_tokens (2000) tokens within synod.frame.maxTimeMs (1000 ms), or while they are busy',
  );
  expect(none).toEndWith(
    '; lower max_tokens or raise synod.frame.maxTimeMs, retry, shorten the prompt, or ask a smaller quorum (synod.frame.quorum)',
  );
  const some = quorumNotMetHint({ ...detail([]), commits: [{}] } as unknown as RequestDetail);
  expect(some).toStartWith('1 node committed of the quorum of 3 asked: ');
  expect(some).toEndWith(
    '; retry, lower params.maxTokens or raise frame.maxTimeMs, shorten the prompt, or ask a smaller quorum (frame.quorum)',
  );
});
