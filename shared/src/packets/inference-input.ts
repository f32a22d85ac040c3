import * as z from 'zod';
import { exactSixDecimals, FrameFieldsSchema } from '../frame/frame.ts';
import { LIMITS } from './limits.ts';
import {
  ChatMessageSchema,
  distinctModels,
  InferenceParamsSchema,
  MAX_SEED,
  MESSAGES_TOO_LONG,
  ModelIdSchema,
  messagesWithinLimit,
} from './schemas.ts';

/**
 * What a caller asks a relay for (the body of `POST /v1/inference`, and an on-chain question mapped by
 * `chainQuestionInput`), before the relay fills in its defaults and builds the request body it signs.
 * One schema for the relay that admits input and for an auditor who checks a refund for invalid input
 * against the question asked (synod-verify), so the two cannot drift apart.
 *
 * Everything but the prompt has a default the relay documents: `models` (its default model list),
 * `params` (`{ temperature: 0, maxTokens: 128 }`), `frame` (`FRAME_DEFAULTS`, the embedding model
 * pinned by the relay).
 */
export const InferenceInputSchema = z
  .strictObject({
    prompt: z.string().min(1).max(LIMITS.maxPromptChars).optional(),
    messages: z.array(ChatMessageSchema).min(1).max(LIMITS.maxMessages).optional(),
    models: z.array(ModelIdSchema).min(1).max(LIMITS.maxAcceptedModels).optional(),
    params: InferenceParamsSchema.partial().optional(),
    frame: FrameFieldsSchema.omit({ embeddingModel: true }).partial().optional(),
    /** Use an embedder other than the relay's default; must be one the relay knows. */
    embeddingModel: z.string().max(128).optional(),
  })
  .refine((b) => (b.prompt === undefined) !== (b.messages === undefined), {
    message: 'send exactly one of prompt and messages',
    path: ['prompt'],
  })
  // The request body's own rules (RequestBodySchema), checked here so that a body that breaks them is
  // the caller's 400, not a request accepted and then unsignable.
  .refine((b) => messagesWithinLimit(b.messages), { message: MESSAGES_TOO_LONG, path: ['messages'] })
  .refine((b) => b.models === undefined || distinctModels(b.models), {
    message: 'models names a model twice',
    path: ['models'],
  })
  // Tighter than packets are read (what older relays signed stays readable): a seed llama.cpp takes as
  // "random", and a fraction that is not exactly six decimals, are refused from callers.
  .refine((b) => b.params?.seed === undefined || b.params.seed <= MAX_SEED, {
    message: `seed must be at most ${MAX_SEED} (${MAX_SEED + 1} is llama.cpp's "random seed")`,
    path: ['params', 'seed'],
  })
  .refine((b) => b.frame?.secDistance === undefined || exactSixDecimals(b.frame.secDistance), {
    message: 'at most six decimal places',
    path: ['frame', 'secDistance'],
  })
  .refine((b) => b.frame?.secPercentage === undefined || exactSixDecimals(b.frame.secPercentage), {
    message: 'at most six decimal places',
    path: ['frame', 'secPercentage'],
  });
export type RequestInput = z.infer<typeof InferenceInputSchema>;

/** One reason an input is refused: where (`frame.quorum`, `models.0`, or empty for the whole) and why. */
export interface InputIssue {
  path: string;
  message: string;
  code: string;
}

/**
 * An issue's refusal code: `FRAME_OUT_OF_RANGE` for a frame field's value, `INVALID_INPUT` for anything
 * else (a frame member that does not exist, or a frame that is not an object, such as `frame: []`, is
 * the input's shape, not a frame out of range). The relay refuses an input with the code of its first
 * issue.
 */
export function inputIssueCode(issue: InputIssue): 'FRAME_OUT_OF_RANGE' | 'INVALID_INPUT' {
  if (issue.code === 'unrecognized_keys') return 'INVALID_INPUT';
  if (issue.path === 'frame') return issue.code === 'invalid_type' ? 'INVALID_INPUT' : 'FRAME_OUT_OF_RANGE';
  return issue.path.startsWith('frame.') ? 'FRAME_OUT_OF_RANGE' : 'INVALID_INPUT';
}

/** The input checked against `InferenceInputSchema`: the parsed input, or every issue found. */
export function parseInferenceInput(
  raw: unknown,
): { ok: true; input: RequestInput } | { ok: false; issues: InputIssue[] } {
  const parsed = InferenceInputSchema.safeParse(raw);
  if (parsed.success) return { ok: true, input: parsed.data };
  return {
    ok: false,
    issues: parsed.error.issues.map((i) => ({ path: i.path.join('.'), message: i.message, code: i.code })),
  };
}

/** What a SynodOracle `callLLM` asks, its strings decoded. */
export interface ChainQuestion {
  prompt: string;
  acceptedModels: readonly string[];
  maxTokens: number;
  /** The temperature in hundredths, as the oracle takes it. */
  temperatureCenti: number;
  quorum: number;
}

/** A chain question in the shape of `InferenceInputSchema`'s input. */
export interface ChainQuestionInput {
  prompt: string;
  models: string[];
  params: { maxTokens: number; temperature: number };
  frame: { quorum: number };
}

/**
 * A question asked on chain as request input: its prompt, accepted models, `maxTokens`, temperature
 * (hundredths on chain) and quorum; everything else takes the relay's documented defaults. The chain
 * watcher admits it through the same validation as `POST /v1/inference`; an auditor re-checks a refund
 * for invalid input through it.
 */
export function chainQuestionInput(q: ChainQuestion): ChainQuestionInput {
  return {
    prompt: q.prompt,
    models: [...q.acceptedModels],
    params: { maxTokens: q.maxTokens, temperature: q.temperatureCenti / 100 },
    frame: { quorum: q.quorum },
  };
}
