import { describe, expect, test } from 'bun:test';
import { type Hex, stringToHex } from 'viem';
import { inputProblems } from './asked-input.ts';

/** A question as the oracle's `LLMRequested` carries it, its strings as bytes. */
const question = (
  o: { prompt?: Hex; models?: Hex[]; maxTokens?: number; temperatureCenti?: number; quorum?: number } = {},
) =>
  inputProblems({
    promptBytes: o.prompt ?? stringToHex('Once upon a time'),
    modelBytes: o.models ?? [stringToHex('stories260K')],
    maxTokens: o.maxTokens ?? 16,
    temperatureCenti: o.temperatureCenti ?? 0,
    quorum: o.quorum ?? 3,
  });

describe('inputProblems: a question asked on chain re-checked by the rules the watcher admits by', () => {
  test('a question the protocol takes has none, whatever UTF-8 its prompt holds', () => {
    expect(question()).toEqual({ INVALID_INPUT: [], FRAME_OUT_OF_RANGE: [] });
    expect(
      question({
        prompt: stringToHex('日本語 🙂 a\u0000b'),
        quorum: 64,
        maxTokens: 4096,
        temperatureCenti: 200,
      }),
    ).toEqual({ INVALID_INPUT: [], FRAME_OUT_OF_RANGE: [] });
  });

  test('bytes the event decoder would change: not UTF-8, or a leading byte-order mark', () => {
    expect(question({ prompt: '0x486920fffe207468657265' }).INVALID_INPUT).toEqual([
      "the prompt's bytes are not UTF-8",
    ]);
    expect(question({ prompt: stringToHex('\ufeffHi') }).INVALID_INPUT).toEqual([
      'the prompt begins with a byte-order mark',
    ]);
    expect(question({ models: [stringToHex('stories260K'), '0xc3'] }).INVALID_INPUT).toEqual([
      "model id 2's bytes are not UTF-8",
    ]);
  });

  test("the request input's rules, in the relay's own words: model ids, models named twice, the prompt's length, params, quorum", () => {
    expect(question({ models: [stringToHex('bad model')] }).INVALID_INPUT).toEqual([
      'models.0: model ids are 1-128 characters of [A-Za-z0-9._:/@+-]',
    ]);
    expect(
      question({ models: [stringToHex('stories260K'), stringToHex('stories260K')] }).INVALID_INPUT,
    ).toEqual(['models: models names a model twice']);
    expect(question({ models: [] }).INVALID_INPUT).toEqual([
      'models: Too small: expected array to have >=1 items',
    ]);
    expect(question({ prompt: '0x' }).INVALID_INPUT).toEqual([
      'prompt: Too small: expected string to have >=1 characters',
    ]);
    expect(question({ maxTokens: 5000, temperatureCenti: 250 }).INVALID_INPUT).toEqual([
      'params.maxTokens: Too big: expected number to be <=4096',
      'params.temperature: Too big: expected number to be <=2',
    ]);
    expect(question({ quorum: 65 })).toEqual({
      INVALID_INPUT: [],
      FRAME_OUT_OF_RANGE: ['frame.quorum: Too big: expected number to be <=64'],
    });
  });

  test('a question with problems of both kinds lists each under its code (the relay refunds with its first)', () => {
    expect(question({ quorum: 0, maxTokens: 0 })).toEqual({
      INVALID_INPUT: ['params.maxTokens: Too small: expected number to be >=1'],
      FRAME_OUT_OF_RANGE: ['frame.quorum: Too small: expected number to be >=1'],
    });
  });
});
