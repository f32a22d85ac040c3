/** Size limits of protocol v1. A packet over any of them is rejected before it is parsed further. */
export const LIMITS = {
  /** Canonical encoding of a whole packet envelope. */
  maxPacketBytes: 256 * 1024,
  maxPromptChars: 32_768,
  maxMessages: 64,
  maxMessagesChars: 65_536,
  maxOutputChars: 65_536,
  maxAcceptedModels: 16,
  maxSealMembers: 128,
  maxVerdictEntries: 256,
  maxHeartbeatModels: 32,
  maxAddresses: 16,
  /** Coordinators a heartbeat may name as the only ones its node serves. */
  maxHeartbeatCoordinators: 16,
  /** Default clock-skew window for `createdAt`: packets older or newer than this are rejected. */
  defaultSkewMs: 120_000,
} as const;
