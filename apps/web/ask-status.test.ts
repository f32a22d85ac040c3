import { expect, test } from 'bun:test';
import { askStatusText } from './ask-status.ts';

test('a status, with its error code when it has one', () => {
  expect(askStatusText({ status: 'sealed' })).toBe('sealed');
  expect(askStatusText({ status: 'expired', error: 'QUORUM_NOT_MET' })).toBe('expired ("QUORUM_NOT_MET")');
});

test('a declined request says how long the prompt is and what the model holds (the decline closest to fitting)', () => {
  const decline = (id: string, promptTokens: number, contextTokens: number) => ({
    model: { id },
    promptTokens,
    contextTokens,
  });
  expect(
    askStatusText({
      status: 'expired',
      error: 'DECLINED',
      declines: [decline('stories260K', 4_814, 512), decline('stories15M', 4_790, 1_024)],
    }),
  ).toBe('expired: declined by 2 nodes, the prompt is 4790 tokens and stories15M holds 1024; shorten it');
  expect(askStatusText({ status: 'expired', error: 'DECLINED', declines: [] })).toBe('expired ("DECLINED")');
});
