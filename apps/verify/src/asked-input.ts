/**
 * Whether a question asked on chain (`LLMRequested`) is input the protocol takes, re-checked here by
 * the rules the chain watcher admits it by (edge/src/chain/chain-watcher.ts, `#admit`), so that a refund
 * for invalid input (`INVALID_INPUT`, `FRAME_OUT_OF_RANGE`) can be held against the question:
 * - the prompt's and every model id's bytes are UTF-8 and do not begin with a byte-order mark (what the
 *   event's decoder would change: the watcher refuses such a question rather than answer another one);
 * - the question decoded passes the request input's rules, from @synod/shared: a prompt of 1 to
 *   `LIMITS.maxPromptChars` characters, 1 to `LIMITS.maxAcceptedModels` model ids, each a
 *   `ModelIdSchema` and none named twice (`distinctModels`), and params within `InferenceParamsSchema`;
 * - the frame a chain request asks (`{quorum}`) is within `FrameFieldsSchema` (else `FRAME_OUT_OF_RANGE`).
 * What depends on the relay (which models its network served, its quota, its embedder) is not here.
 */
import {
  distinctModels,
  FrameFieldsSchema,
  InferenceParamsSchema,
  LIMITS,
  ModelIdSchema,
} from '@synod/shared';
import { type Hex, hexToBytes } from 'viem';
import type { Asked } from './chain-question.ts';

/** The strings of an `LLMRequested` event as the bytes that were sent, before any decoding. */
export interface AskedBytes {
  promptBytes: Hex;
  modelBytes: readonly Hex[];
}

/** What the protocol refuses in a question, one line each, by the refund reason it is refused with. */
export interface InputProblems {
  INVALID_INPUT: string[];
  FRAME_OUT_OF_RANGE: string[];
}

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** The text of `bytes`, or why it is not text the event's decoder leaves as it was sent. */
function textOf(bytes: Hex, what: string): { text: string } | { problem: string } {
  let text: string;
  try {
    text = utf8.decode(hexToBytes(bytes));
  } catch {
    return { problem: `${what}'s bytes are not UTF-8` };
  }
  if (text.startsWith('\ufeff')) return { problem: `${what} begins with a byte-order mark` };
  return { text };
}

/** What the protocol refuses in the question asked (see the file's header); empty lists when it takes it. */
export function inputProblems(
  q: Pick<Asked, 'maxTokens' | 'temperatureCenti' | 'quorum'> & AskedBytes,
): InputProblems {
  const invalid: string[] = [];
  const prompt = textOf(q.promptBytes, 'the prompt');
  if ('problem' in prompt) invalid.push(prompt.problem);
  else if (prompt.text.length < 1 || prompt.text.length > LIMITS.maxPromptChars) {
    invalid.push(`the prompt has ${prompt.text.length} characters, not 1 to ${LIMITS.maxPromptChars}`);
  }
  if (q.modelBytes.length < 1 || q.modelBytes.length > LIMITS.maxAcceptedModels) {
    invalid.push(`the question names ${q.modelBytes.length} models, not 1 to ${LIMITS.maxAcceptedModels}`);
  }
  const models: string[] = [];
  for (const [i, bytes] of q.modelBytes.entries()) {
    const model = textOf(bytes, `model id ${i + 1}`);
    if ('problem' in model) {
      invalid.push(model.problem);
      continue;
    }
    models.push(model.text);
    const parsed = ModelIdSchema.safeParse(model.text);
    if (!parsed.success) {
      invalid.push(`model id ${JSON.stringify(model.text)}: ${parsed.error.issues[0]?.message ?? 'invalid'}`);
    }
  }
  if (!distinctModels(models)) invalid.push('the question names a model twice');
  const params = InferenceParamsSchema.safeParse({
    maxTokens: q.maxTokens,
    temperature: q.temperatureCenti / 100,
  });
  if (!params.success) {
    for (const i of params.error.issues) invalid.push(`params.${i.path.join('.')}: ${i.message}`);
  }
  const frame = FrameFieldsSchema.shape.quorum.safeParse(q.quorum);
  return {
    INVALID_INPUT: invalid,
    FRAME_OUT_OF_RANGE: frame.success ? [] : frame.error.issues.map((i) => `frame.quorum: ${i.message}`),
  };
}
