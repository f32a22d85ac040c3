import {
  type EmbeddingModelRef,
  FRAME_BOUNDS,
  type Frame,
  InferenceParamsSchema,
  inputIssueCode,
  LIMITS,
  type Origin,
  packetSize,
  parseInferenceInput,
  type RequestBody,
  type RequestInput,
  resolveFrame,
  SynodError,
  toHex,
  withRequestId,
} from '@synod/shared';
import { edgeError } from './http/errors.ts';

/**
 * The body of `POST /v1/inference` (`InferenceInputSchema`, from @synod/shared, where an auditor checks
 * a chain question against the same rules). Everything but the prompt has a documented default:
 * - `models`: the relay's default model list (`RelayConfig.defaultModels`);
 * - `params`: `{ temperature: 0, maxTokens: 128 }` (greedy: the outputs of honest nodes agree);
 * - `frame`: `FRAME_DEFAULTS` from `@synod/shared` (quorum 3, secDistance 0.15, secPercentage 0.6,
 *   maxTimeMs 30 s, revealWindowMs 10 s), with the embedding model pinned by the relay.
 */
export { InferenceInputSchema } from '@synod/shared';

export const DEFAULT_PARAMS = { temperature: 0, maxTokens: 128 } as const;

export interface RequestDefaults {
  /** Models the network serves (configured, and advertised by proven or trusted nodes). */
  knownModels: ReadonlySet<string>;
  defaultModels: readonly string[];
  /** Embedders the relay can pin, by id; the first is the default. */
  embedders: readonly EmbeddingModelRef[];
}

/**
 * A relay's defaults right now: the models its network serves (heartbeats and configuration) and its
 * configured default models and embedders.
 */
export async function relayDefaults(
  network: { servedModels(): Promise<ReadonlySet<string>> },
  config: { defaultModels: readonly string[]; embedders: readonly EmbeddingModelRef[] },
): Promise<RequestDefaults> {
  return {
    knownModels: await network.servedModels(),
    defaultModels: config.defaultModels,
    embedders: config.embedders,
  };
}

const HTTP_ORIGIN: Origin = Object.freeze({ kind: 'http' as const });

/**
 * The request's frame, its defaults filled in; a rule across its fields (`maxCommits` at least `quorum`,
 * the default `maxCommits` included) broken is FRAME_OUT_OF_RANGE naming the field as the caller sent it
 * (`frame.maxCommits`), as a field out of its own bounds is.
 */
function frameOf(given: NonNullable<RequestInput['frame']>, embedder: EmbeddingModelRef): Frame {
  try {
    return resolveFrame({ ...stripUndefined(given), embeddingModel: embedder });
  } catch (e) {
    const issues = e instanceof SynodError ? e.details['issues'] : undefined;
    if (!(e instanceof SynodError) || e.code !== 'FRAME_OUT_OF_RANGE' || !Array.isArray(issues)) throw e;
    const named = (issues as { path: string; message: string }[]).map((i) => ({
      path: i.path === '' ? 'frame' : `frame.${i.path}`,
      message: i.message,
    }));
    const first = named[0] as { path: string; message: string };
    throw new SynodError('FRAME_OUT_OF_RANGE', `${first.path}: ${first.message}`, {
      details: { issues: named, bounds: FRAME_BOUNDS },
      ...(e.hint === undefined ? {} : { hint: e.hint }),
    });
  }
}

/**
 * Validate an HTTP input and build the request body the relay will sign (throws HttpError 400, or
 * SynodError FRAME_OUT_OF_RANGE), with the body's canonical JSON text beside it (`withRequestId`): what
 * the accept path stores, made by the same canonicalization that derived the id. `origin` is where the request came
 * from: HTTP by default; the chain watcher passes the on-chain request's origin (its id is then
 * `<chainId>:<contract>:<requestNo>`).
 */
export function buildRequest(
  raw: unknown,
  defaults: RequestDefaults,
  now: number,
  random: (n: number) => Uint8Array,
  origin: Origin = HTTP_ORIGIN,
): { body: RequestBody; json: string } {
  const parsed = parseInferenceInput(raw);
  if (!parsed.ok) {
    const { issues } = parsed;
    const first = issues[0];
    if (first !== undefined && inputIssueCode(first) === 'FRAME_OUT_OF_RANGE') {
      throw new SynodError('FRAME_OUT_OF_RANGE', `${first.path}: ${first.message}`, {
        details: { issues, bounds: FRAME_BOUNDS },
        hint: 'see FRAME_BOUNDS: secDistance in [0, 0.5], secPercentage in (0, 1], quorum <= maxCommits',
      });
    }
    throw edgeError(400, 'INVALID_INPUT', `${first?.path || 'body'}: ${first?.message ?? 'invalid'}`, {
      issues,
    });
  }
  const { input } = parsed;
  const models = input.models ?? [...defaults.defaultModels];
  const unknown = models.filter((m) => !defaults.knownModels.has(m));
  if (unknown.length > 0) {
    throw edgeError(
      400,
      'UNKNOWN_MODEL',
      `no node serves ${unknown.join(', ')}`,
      { unknown, known: [...defaults.knownModels].sort() },
      'GET /v1/models lists the models the network serves',
    );
  }
  const embedder =
    input.embeddingModel === undefined
      ? defaults.embedders[0]
      : defaults.embedders.find((e) => e.id === input.embeddingModel);
  if (!embedder) {
    throw edgeError(
      400,
      'UNKNOWN_MODEL',
      `unknown embedding model ${input.embeddingModel ?? '(none configured)'}`,
      {
        known: defaults.embedders.map((e) => e.id),
      },
    );
  }
  // A frame out of range throws SynodError FRAME_OUT_OF_RANGE, which the app maps to a 400 with that code.
  const frame = input.frame === undefined ? defaultFrame(embedder) : frameOf(input.frame, embedder);
  // Parsed again, not merely merged: the schema's output has its members in canonical (sorted) order,
  // which keeps the canonical encoding below on its fast path (a spread merge was measured slower).
  const params = InferenceParamsSchema.parse({ ...DEFAULT_PARAMS, ...stripUndefined(input.params ?? {}) });
  // Members in canonical order (the schemas' order too), so the body is hashed without a copy.
  const built = withRequestId({
    acceptedModels: models,
    createdAt: now,
    frame,
    ...(input.messages !== undefined ? { messages: input.messages } : {}),
    nonce: toHex(random(16)),
    origin,
    params,
    ...(input.prompt !== undefined ? { prompt: input.prompt } : {}),
  });
  checkPacketSize(built.json);
  return built;
}

/**
 * A body whose request packet would be over `LIMITS.maxPacketBytes` (within the body limit, text the
 * canonical form escapes, such as control characters, grows up to sixfold) could never be signed: the
 * caller's 413 PACKET_TOO_LARGE, not a request stored and then dropped. Its UTF-8 length is only measured
 * when three bytes a character could reach the limit.
 */
function checkPacketSize(json: string): void {
  if (packetSize('request', 3 * json.length) <= LIMITS.maxPacketBytes) return;
  const size = packetSize('request', new TextEncoder().encode(json).length);
  if (size > LIMITS.maxPacketBytes) {
    throw new SynodError('PACKET_TOO_LARGE', `the request would be a ${size}-byte packet`, {
      details: { size, limit: LIMITS.maxPacketBytes },
      hint: 'shorten the prompt or messages: control characters count six bytes each in the canonical form',
    });
  }
}

/** The frame of a request that sets none, per embedder (validated once; frozen, as bodies share it). */
const defaultFrames = new WeakMap<EmbeddingModelRef, Frame>();

function defaultFrame(embedder: EmbeddingModelRef): Frame {
  let frame = defaultFrames.get(embedder);
  if (frame === undefined) {
    const resolved = resolveFrame({ embeddingModel: embedder });
    frame = Object.freeze({ ...resolved, embeddingModel: Object.freeze({ ...resolved.embeddingModel }) });
    defaultFrames.set(embedder, frame);
  }
  return frame;
}

type Defined<T> = { [K in keyof T]?: Exclude<T[K], undefined> };

function stripUndefined<T extends object>(o: T): Defined<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Defined<T>;
}
