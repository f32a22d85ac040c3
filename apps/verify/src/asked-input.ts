/**
 * Whether a question asked on chain (`LLMRequested`) is input the protocol takes, re-checked here by
 * the rules the chain watcher admits it by (edge/src/chain/chain-watcher.ts, `#admit`), so that a refund
 * for invalid input (`INVALID_INPUT`, `FRAME_OUT_OF_RANGE`) can be held against the question:
 * - the prompt's and every model id's bytes are UTF-8 and do not begin with a byte-order mark (what the
 *   event's decoder would change: the watcher refuses such a question rather than answer another one);
 * - the question decoded, as request input (`chainQuestionInput`), passes `InferenceInputSchema`: both
 *   from @synod/shared, the very schema and mapping the relay admits the question through. An issue in
 *   the frame (the quorum) is a `FRAME_OUT_OF_RANGE`, any other an `INVALID_INPUT`, as the relay codes
 *   them (`inputIssueCode`).
 * What depends on the relay (which models its network served, its quota, its embedder) is not here.
 */
import { chainQuestionInput, inputIssueCode, parseInferenceInput } from '@synod/shared';
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
  const problems: InputProblems = { INVALID_INPUT: [], FRAME_OUT_OF_RANGE: [] };
  const prompt = textOf(q.promptBytes, 'the prompt');
  const models = q.modelBytes.map((bytes, i) => textOf(bytes, `model id ${i + 1}`));
  const undecoded = [prompt, ...models].flatMap((t) => ('problem' in t ? [t.problem] : []));
  // Text the decoder would change is refused before anything is read from it.
  if (undecoded.length > 0) return { ...problems, INVALID_INPUT: undecoded };
  const checked = parseInferenceInput(
    chainQuestionInput({
      prompt: 'text' in prompt ? prompt.text : '',
      acceptedModels: models.map((m) => ('text' in m ? m.text : '')),
      maxTokens: q.maxTokens,
      temperatureCenti: q.temperatureCenti,
      quorum: q.quorum,
    }),
  );
  if (checked.ok) return problems;
  for (const issue of checked.issues) problems[inputIssueCode(issue)].push(`${issue.path}: ${issue.message}`);
  return problems;
}
