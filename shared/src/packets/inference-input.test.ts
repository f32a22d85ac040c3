import { describe, expect, test } from 'bun:test';
import { chainQuestionInput, inputIssueCode, parseInferenceInput } from './inference-input.ts';
import { LIMITS } from './limits.ts';

describe('parseInferenceInput: the input a relay admits', () => {
  test('a prompt alone is enough; everything else has a default', () => {
    expect(parseInferenceInput({ prompt: 'Once upon a time' })).toEqual({
      ok: true,
      input: { prompt: 'Once upon a time' },
    });
  });

  test('every issue is listed, with its path, and coded as the relay refuses it', () => {
    const parsed = parseInferenceInput({
      prompt: 'x',
      models: ['a', 'a'],
      params: { maxTokens: 0 },
      frame: { quorum: 65, colour: 'red' },
    });
    expect(parsed.ok).toBe(false);
    if (parsed.ok) return;
    expect(parsed.issues.map((i) => [i.path, inputIssueCode(i)])).toEqual([
      ['params.maxTokens', 'INVALID_INPUT'],
      ['frame.quorum', 'FRAME_OUT_OF_RANGE'],
      // A frame member that does not exist is the input's shape, not a frame out of range.
      ['frame', 'INVALID_INPUT'],
      ['models', 'INVALID_INPUT'],
    ]);
  });

  test('a frame that is not an object is the input’s shape; a member’s value is the frame’s range', () => {
    const codes = (frame: unknown) => {
      const parsed = parseInferenceInput({ prompt: 'x', frame });
      return parsed.ok ? [] : parsed.issues.map((i) => [i.path, inputIssueCode(i)]);
    };
    expect(codes([])).toEqual([['frame', 'INVALID_INPUT']]);
    expect(codes('3')).toEqual([['frame', 'INVALID_INPUT']]);
    expect(codes({ quorum: '3' })).toEqual([['frame.quorum', 'FRAME_OUT_OF_RANGE']]);
    expect(codes({ quorum: 2.5 })).toEqual([['frame.quorum', 'FRAME_OUT_OF_RANGE']]);
  });

  test("the request body's own rules: one of prompt and messages, messages' total, distinct models", () => {
    const paths = (raw: unknown) => {
      const parsed = parseInferenceInput(raw);
      return parsed.ok ? [] : parsed.issues.map((i) => `${i.path}: ${i.message}`);
    };
    expect(paths({})).toEqual(['prompt: send exactly one of prompt and messages']);
    const third = { role: 'user', content: 'x'.repeat(Math.floor(LIMITS.maxMessagesChars / 3) + 1) };
    expect(paths({ messages: [third, third, third] })).toEqual([
      `messages: messages hold at most ${LIMITS.maxMessagesChars} characters in all`,
    ]);
    expect(paths({ prompt: 'x', models: ['m', 'm'] })).toEqual(['models: models names a model twice']);
  });
});

describe('chainQuestionInput: a question asked on chain as request input', () => {
  test('its prompt, models, maxTokens, temperature from hundredths and quorum; nothing else', () => {
    const input = chainQuestionInput({
      prompt: 'Hi',
      acceptedModels: ['stories260K'],
      maxTokens: 32,
      temperatureCenti: 70,
      quorum: 5,
    });
    expect(input).toEqual({
      prompt: 'Hi',
      models: ['stories260K'],
      params: { maxTokens: 32, temperature: 0.7 },
      frame: { quorum: 5 },
    });
    expect(parseInferenceInput(input).ok).toBe(true);
  });
});
