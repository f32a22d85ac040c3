import type { HeartbeatBody } from '@synod/shared';
import type { Embedder } from './embedder.ts';
import type { Engine } from './engine.ts';
import { notLoaded, rate } from './engine.ts';

/**
 * Capability self-assessment: a short fixed workload per engine and embedder, measured on the wall
 * clock, giving the numbers a node advertises in its signed heartbeat and feeds into its queue's
 * deadline estimates. The workload is fixed (same prompt, greedy, same texts) so numbers from different
 * nodes compare like with like.
 */
export const BENCH_PROMPT = 'Once upon a time';
export const BENCH_TEXTS = [
  'The quick brown fox jumps over the lazy dog.',
  'A decentralized network answers each request with a quorum of independent nodes.',
  'She opened the window and the morning light filled the small kitchen.',
  'Interest rates rose sharply, and the stock market fell by three percent.',
] as const;

/** The heartbeat schema caps rates at 1e7. */
const MAX_RATE = 1e7;

export type ModelCapability = HeartbeatBody['models'][number];
export type EmbedderCapability = HeartbeatBody['embedders'][number];

export interface EngineBenchOptions {
  /** Tokens to generate (default 64). */
  maxTokens?: number;
  /** Measured runs after one warm-up (default 1); the result is their total tokens over total time. */
  runs?: number;
}

/** Tokens per second of a loaded engine on the fixed greedy workload. */
export async function measureEngine(
  engine: Engine,
  options: EngineBenchOptions = {},
): Promise<ModelCapability> {
  const model = engine.model;
  if (model === null) throw notLoaded(`engine ${engine.id}`);
  const params = { temperature: 0, maxTokens: options.maxTokens ?? 64 };
  await engine.generate({ prompt: BENCH_PROMPT, params: { temperature: 0, maxTokens: 4 } });
  let tokens = 0;
  const started = performance.now();
  for (let i = 0; i < (options.runs ?? 1); i++) {
    tokens += (await engine.generate({ prompt: BENCH_PROMPT, params })).tokens;
  }
  const tokensPerSecond = Math.min(MAX_RATE, rate(Math.max(tokens, 1), performance.now() - started));
  return { id: model.id, fileHash: model.fileHash, engine: engine.id.slice(0, 32), tokensPerSecond };
}

/** Embeddings per second of a loaded embedder on the fixed texts, one text at a time. */
export async function measureEmbedder(
  embedder: Embedder,
  options: { rounds?: number } = {},
): Promise<EmbedderCapability> {
  const ref = embedder.ref;
  await embedder.embedBits(BENCH_TEXTS[0]);
  const rounds = options.rounds ?? 1;
  const started = performance.now();
  for (let r = 0; r < rounds; r++) for (const text of BENCH_TEXTS) await embedder.embedBits(text);
  const embeddingsPerSecond = Math.min(
    MAX_RATE,
    rate(rounds * BENCH_TEXTS.length, performance.now() - started),
  );
  return { id: ref.id, fileHash: ref.fileHash, bits: ref.bits, embeddingsPerSecond };
}

/** The `models` and `embedders` fields of a heartbeat, measured now. */
export async function assessCapabilities(
  engines: readonly Engine[],
  embedders: readonly Embedder[],
  options: EngineBenchOptions = {},
): Promise<Pick<HeartbeatBody, 'models' | 'embedders'>> {
  const models: ModelCapability[] = [];
  for (const e of engines) models.push(await measureEngine(e, options));
  const embeds: EmbedderCapability[] = [];
  for (const e of embedders) embeds.push(await measureEmbedder(e));
  return { models, embedders: embeds };
}
