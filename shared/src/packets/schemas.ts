import * as z from 'zod';
import { EmbeddingModelRefSchema, FrameSchema, HASH_HEX_RE, MODEL_ID_RE } from '../frame/frame.ts';
import { LIMITS } from './limits.ts';

/** Protocol version carried in every envelope. */
export const PROTOCOL_VERSION = 1 as const;

export const PACKET_TYPES = [
  'request',
  'commit',
  'seal',
  'reveal',
  'verdict',
  'attestation',
  'heartbeat',
  'decline',
] as const;
export type PacketType = (typeof PACKET_TYPES)[number];

const hex = (bytes: number) =>
  z.string().regex(new RegExp(`^[0-9a-f]{${bytes * 2}}$`), `${bytes} bytes of lowercase hex`);
export const NodeIdSchema = hex(32);
export const DigestSchema = z.string().regex(HASH_HEX_RE, 'a sha256 in lowercase hex');
export const SignatureSchema = hex(64);
const Timestamp = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);

/** `<64 hex>` for content-derived ids, `<chainId>:<0xcontract>:<requestNo>` for chain requests. */
export const CHAIN_REQUEST_ID_RE = /^(\d{1,20}):(0x[0-9a-f]{40}):(\d{1,78})$/;
/**
 * The longest request id: a chain request's with a 20-digit chain id and a 78-digit request number (any
 * uint256), 142 characters. The database's CHECK on stored ids uses the same bound.
 */
export const REQUEST_ID_MAX_CHARS = 20 + 1 + 42 + 1 + 78;
export const RequestIdSchema = z
  .string()
  .max(REQUEST_ID_MAX_CHARS)
  .refine(
    (s) => HASH_HEX_RE.test(s) || CHAIN_REQUEST_ID_RE.test(s),
    'a 64-hex request id or chainId:contract:requestNo',
  );

export const ModelIdSchema = z
  .string()
  .regex(MODEL_ID_RE, 'model ids are 1-128 characters of [A-Za-z0-9._:/@+-]');
export const ModelRefSchema = z.strictObject({ id: ModelIdSchema, fileHash: DigestSchema });
export type ModelRef = z.infer<typeof ModelRefSchema>;

/*
 * Members of the request schemas are declared in canonical (RFC 8785, sorted) order: zod writes a
 * parsed object's members in its schema's order, so a parsed body is already in the order
 * `canonicalJson` writes and is hashed and signed without being copied first.
 */

export const ChatMessageSchema = z.strictObject({
  content: z.string().max(LIMITS.maxPromptChars),
  role: z.enum(['system', 'user', 'assistant']),
});
export type ChatMessage = z.infer<typeof ChatMessageSchema>;

/**
 * Whether a request's messages hold at most `LIMITS.maxMessagesChars` characters in all. A rule of the
 * request body, exported so that an input schema checks it before a body is built (a relay that took a
 * body breaking it could not sign it).
 */
export function messagesWithinLimit(messages: readonly { content: string }[] | undefined): boolean {
  let n = 0;
  for (const m of messages ?? []) n += m.content.length;
  return n <= LIMITS.maxMessagesChars;
}
export const MESSAGES_TOO_LONG = `messages hold at most ${LIMITS.maxMessagesChars} characters in all`;

/** Whether a model list names each model once (a request body's `acceptedModels` must). */
export function distinctModels(ids: readonly string[]): boolean {
  return new Set(ids).size === ids.length;
}

/** The largest sampling seed (see `InferenceParamsSchema.seed`). */
export const MAX_SEED = 0xfffffffe;

export const InferenceParamsSchema = z.strictObject({
  maxTokens: z.number().int().min(1).max(4096),
  /**
   * A uint32 as packets are read (what older relays signed). A relay takes at most `MAX_SEED` from its
   * callers (`InferenceInputSchema`), and the engines refuse 2^32 - 1: llama.cpp (node-llama-cpp,
   * wllama) reads it as "a random seed", so each node would sample its own way.
   */
  seed: z.number().int().min(0).max(0xffffffff).optional(),
  temperature: z.number().min(0).max(2),
  topK: z.number().int().min(1).max(1000).optional(),
  topP: z.number().gt(0).max(1).optional(),
});
export type InferenceParams = z.infer<typeof InferenceParamsSchema>;

export const OriginSchema = z.discriminatedUnion('kind', [
  z.strictObject({ kind: z.literal('http') }),
  z.strictObject({ kind: z.literal('peer') }),
  z.strictObject({
    blockNumber: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
    chainId: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER),
    contract: z.string().regex(/^0x[0-9a-f]{40}$/, 'a lowercase 0x address'),
    kind: z.literal('chain'),
    requestNo: z.string().regex(/^\d{1,78}$/),
    txHash: z.string().regex(/^0x[0-9a-f]{64}$/),
  }),
]);
export type Origin = z.infer<typeof OriginSchema>;

export const RequestBodySchema = z
  .strictObject({
    acceptedModels: z.array(ModelIdSchema).min(1).max(LIMITS.maxAcceptedModels),
    createdAt: Timestamp,
    frame: FrameSchema,
    messages: z.array(ChatMessageSchema).min(1).max(LIMITS.maxMessages).optional(),
    nonce: hex(16),
    origin: OriginSchema,
    params: InferenceParamsSchema,
    prompt: z.string().min(1).max(LIMITS.maxPromptChars).optional(),
    requestId: RequestIdSchema,
  })
  .refine((b) => (b.prompt === undefined) !== (b.messages === undefined), {
    message: 'exactly one of prompt and messages',
    path: ['prompt'],
  })
  .refine((b) => messagesWithinLimit(b.messages), {
    message: MESSAGES_TOO_LONG,
    path: ['messages'],
  })
  .refine((b) => distinctModels(b.acceptedModels), {
    message: 'acceptedModels has duplicates',
    path: ['acceptedModels'],
  });
export type RequestBody = z.infer<typeof RequestBodySchema>;

export const CommitBodySchema = z.strictObject({
  requestId: RequestIdSchema,
  commitment: DigestSchema,
  createdAt: Timestamp,
});
export type CommitBody = z.infer<typeof CommitBodySchema>;

export const SealMemberSchema = z.strictObject({
  nodeId: NodeIdSchema,
  commitment: DigestSchema,
  /** Packet id of the member's signed commit, so verifiers can find and check it in the transcript. */
  commitId: DigestSchema,
});
export type SealMember = z.infer<typeof SealMemberSchema>;

export const SealBodySchema = z
  .strictObject({
    requestId: RequestIdSchema,
    /** Packet id of the request this seal closes. */
    requestPacketId: DigestSchema,
    /** Sorted by nodeId, one entry per node. */
    members: z.array(SealMemberSchema).min(1).max(LIMITS.maxSealMembers),
    createdAt: Timestamp,
  })
  .refine((b) => b.members.every((m, i) => i === 0 || (b.members[i - 1] as SealMember).nodeId < m.nodeId), {
    message: 'members must be sorted by nodeId with no node twice',
    path: ['members'],
  });
export type SealBody = z.infer<typeof SealBodySchema>;

/** A reveal's `usage`: the token counts of the node's engine. */
export const RevealUsageSchema = z.strictObject({
  completionTokens: z.number().int().min(0).max(100_000_000),
  promptTokens: z.number().int().min(0).max(100_000_000),
});

export const RevealBodySchema = z.strictObject({
  requestId: RequestIdSchema,
  output: z.string().max(LIMITS.maxOutputChars),
  /** Sign-quantized embedding of `output`, packed as documented in embedding/binary.ts. */
  bEmbedding: z
    .string()
    .max(2048)
    .regex(/^(?:[0-9a-f]{2})+$/, 'packed bits in lowercase hex'),
  model: ModelRefSchema,
  salt: hex(32),
  createdAt: Timestamp,
  /**
   * Present only when the output was cut at params.maxTokens; absent, the model stopped on its own.
   * Signed with the reveal but outside the commitment and the verdict: informational, for clients.
   */
  finishReason: z.literal('length').optional(),
  /**
   * The tokens the node's engine counted: the prompt (chat template included) and the output. Signed with
   * the reveal but outside the commitment and the verdict: informational, what relays report to OpenAI
   * clients as `usage` from the winner's reveal. Absent where the engine does not say.
   */
  usage: RevealUsageSchema.optional(),
});
export type RevealBody = z.infer<typeof RevealBodySchema>;

/**
 * Why a node that took a request cannot run it. Only reasons every honest node serving the same model
 * file would give alike (a property of the request and the model, not of the node), so that declines of
 * many nodes mean the request cannot be run, not that those nodes are busy.
 *
 * - `context-exceeded`: the prompt, as the model's tokenizer and chat template make it, fills the model's
 *   context window (`promptTokens >= contextTokens`), leaving no room for a token of output.
 */
export const DECLINE_REASONS = ['context-exceeded'] as const;
export type DeclineReason = (typeof DECLINE_REASONS)[number];

/**
 * A node's signed word that it cannot run a request with the model it would use (`DECLINE_REASONS`).
 * Sent instead of a commit, before the seal; a node that declined a request never commits to it. Not
 * part of a verdict's transcript: a coordinator ends the request `declined` when as many nodes decline
 * it as a seal would trust to answer it (see the coordinator), and says why from these.
 */
export const DeclineBodySchema = z
  .strictObject({
    requestId: RequestIdSchema,
    /** Packet id of the request declined. */
    requestPacketId: DigestSchema,
    model: ModelRefSchema,
    reason: z.enum(DECLINE_REASONS),
    /** The prompt's length in the model's tokens (chat template included). */
    promptTokens: z.number().int().min(0).max(100_000_000),
    /** The context window the node runs the model with, in tokens. */
    contextTokens: z.number().int().min(1).max(100_000_000),
    createdAt: Timestamp,
  })
  .refine((b) => b.promptTokens >= b.contextTokens, {
    message: 'a context-exceeded decline has promptTokens >= contextTokens',
    path: ['promptTokens'],
  });
export type DeclineBody = z.infer<typeof DeclineBodySchema>;

export const REJECT_REASONS = [
  'NOT_SEALED',
  'NOT_REVEALED',
  'COMMITMENT_MISMATCH',
  'MODEL_NOT_ACCEPTED',
  'EMBEDDING_LENGTH',
  'EMBEDDING_DISAGREES',
  'REVEAL_LATE',
  'DUPLICATE_REVEAL',
  'OUTSIDE_CLUSTER',
] as const;
export type RejectReason = (typeof REJECT_REASONS)[number];

const MemberRefSchema = z.strictObject({ nodeId: NodeIdSchema, commitment: DigestSchema });

/**
 * A verdict's re-embedding claim: the bits the verdict's author computed for a reveal's output with the
 * frame's embedder, where they disagreed with the revealed bits (EMBEDDING_DISAGREES). See
 * consensus/verdict.ts: the claims are part of the verdict so that anyone recomputes it from the
 * transcript and them; whether a claim is true only a re-embedding tells (synod-verify --reembed).
 */
export const ReembeddingClaimSchema = z.strictObject({
  nodeId: NodeIdSchema,
  revealId: DigestSchema,
  bits: z
    .string()
    .max(2048)
    .regex(/^(?:[0-9a-f]{2})+$/, 'packed bits in lowercase hex'),
});
export type ReembeddingClaim = z.infer<typeof ReembeddingClaimSchema>;

export const VerdictSchema = z
  .strictObject({
    v: z.literal(1),
    requestId: RequestIdSchema,
    sealId: DigestSchema,
    status: z.enum(['accepted', 'no-consensus']),
    bits: z.number().int().min(8).max(8192),
    thresholdBits: z.number().int().min(0).max(8192),
    sealSize: z.number().int().min(1).max(LIMITS.maxSealMembers),
    required: z.number().int().min(1).max(LIMITS.maxSealMembers),
    centre: MemberRefSchema.nullable(),
    accepted: z.array(MemberRefSchema).max(LIMITS.maxSealMembers),
    winner: z
      .strictObject({
        nodeId: NodeIdSchema,
        commitment: DigestSchema,
        model: ModelRefSchema,
        output: z.string().max(LIMITS.maxOutputChars),
        outputDigest: DigestSchema,
      })
      .nullable(),
    rejected: z
      .array(
        z.strictObject({
          nodeId: NodeIdSchema,
          commitment: DigestSchema.nullable(),
          revealId: DigestSchema.nullable(),
          reason: z.enum(REJECT_REASONS),
        }),
      )
      .max(LIMITS.maxVerdictEntries),
    /**
     * The author's re-embeddings of the reveals it rejected EMBEDDING_DISAGREES, one per such member,
     * sorted by nodeId; absent when there are none (never empty), so a verdict without any is the same
     * bytes as before re-embedding existed.
     */
    reembedded: z.array(ReembeddingClaimSchema).min(1).max(LIMITS.maxSealMembers).optional(),
  })
  .superRefine((v, ctx) => {
    for (const [i, claim] of (v.reembedded ?? []).entries()) {
      if (claim.bits.length !== v.bits / 4) {
        ctx.addIssue({
          code: 'custom',
          message: `a re-embedding claim holds ${v.bits} bits (${v.bits / 4} hex characters)`,
          path: ['reembedded', i, 'bits'],
        });
      }
    }
  });
export type Verdict = z.infer<typeof VerdictSchema>;

export const VerdictBodySchema = z.strictObject({
  requestId: RequestIdSchema,
  verdict: VerdictSchema,
  verdictDigest: DigestSchema,
  transcriptRoot: DigestSchema,
  createdAt: Timestamp,
});
export type VerdictBody = z.infer<typeof VerdictBodySchema>;

export const AttestationBodySchema = z.strictObject({
  requestId: RequestIdSchema,
  verdictDigest: DigestSchema,
  transcriptRoot: DigestSchema,
  createdAt: Timestamp,
});
export type AttestationBody = z.infer<typeof AttestationBodySchema>;

export const HeartbeatBodySchema = z.strictObject({
  role: z.enum(['node', 'relay', 'follower', 'verifier']),
  software: z.string().max(64),
  models: z
    .array(
      z.strictObject({
        id: ModelIdSchema,
        fileHash: DigestSchema,
        engine: z.string().max(32),
        tokensPerSecond: z.number().min(0).max(1e7),
      }),
    )
    .max(LIMITS.maxHeartbeatModels),
  embedders: z
    .array(
      EmbeddingModelRefSchema.extend({
        embeddingsPerSecond: z.number().min(0).max(1e7),
      }).strict(),
    )
    .max(LIMITS.maxHeartbeatModels),
  capacity: z.strictObject({
    queued: z.number().int().min(0).max(1e6),
    maxQueue: z.number().int().min(0).max(1e6),
  }),
  addresses: z.array(z.string().max(256)).max(LIMITS.maxAddresses),
  createdAt: Timestamp,
  /**
   * The coordinators (relays' node ids) whose requests the node serves, when it serves only those
   * (`synod node --coordinators`, a tab's relay); absent: any author. So a relay it does not serve does
   * not count it among the nodes that could answer a request (`servesCoordinator`).
   */
  coordinators: z.array(NodeIdSchema).min(1).max(LIMITS.maxHeartbeatCoordinators).optional(),
});
export type HeartbeatBody = z.infer<typeof HeartbeatBodySchema>;

/** Whether a node, by its heartbeat, takes requests coordinated by `coordinator`. */
export function servesCoordinator(body: Pick<HeartbeatBody, 'coordinators'>, coordinator: string): boolean {
  return body.coordinators === undefined || body.coordinators.includes(coordinator);
}

export const BODY_SCHEMAS = {
  request: RequestBodySchema,
  commit: CommitBodySchema,
  seal: SealBodySchema,
  reveal: RevealBodySchema,
  verdict: VerdictBodySchema,
  attestation: AttestationBodySchema,
  heartbeat: HeartbeatBodySchema,
  decline: DeclineBodySchema,
} as const;

export interface BodyOf {
  request: RequestBody;
  commit: CommitBody;
  seal: SealBody;
  reveal: RevealBody;
  verdict: VerdictBody;
  attestation: AttestationBody;
  heartbeat: HeartbeatBody;
  decline: DeclineBody;
}

/** The signed envelope `{v, type, from, body, sig}`. */
export interface Packet<T extends PacketType = PacketType> {
  v: typeof PROTOCOL_VERSION;
  type: T;
  from: string;
  body: BodyOf[T];
  sig: string;
}

export type AnyPacket = { [T in PacketType]: Packet<T> }[PacketType];

export const EnvelopeSchema = z.strictObject({
  v: z.number().int(),
  type: z.string().max(32),
  from: NodeIdSchema,
  // Any JSON object, passed on as it is for its type's strict schema: a record schema would copy it and
  // drop an own `__proto__` member (which JSON.parse makes), so the packet would verify with a member
  // the protocol does not define, where every other unknown member is refused.
  body: z.custom<Record<string, unknown>>(
    (b) => typeof b === 'object' && b !== null && !Array.isArray(b),
    'body must be an object',
  ),
  sig: SignatureSchema,
});
