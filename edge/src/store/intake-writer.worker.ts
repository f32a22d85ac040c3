/**
 * The admission writer thread: owns one libSQL connection to the relay's database file and admits on
 * it (`SyncIntakeWriter`: the decisions of `IntakeStore.admit` on a synchronous connection), so the
 * group commit's statements and fsync never block the thread that serves HTTP. Started by
 * `IntakeWriterThread` (intake-writer-thread.ts); speaks intake-writer-protocol.ts.
 *
 * The HTTP thread hands batches over as they fill; here a `GroupCommit` joins every batch that arrived
 * while the previous transaction committed into the next transaction.
 */
import { GroupCommit } from '../relay/group-commit.ts';
import type { IntakeEntry } from './intake-store.ts';
import { decodeBatch, type WriterRequest, type WriterResponse } from './intake-writer-protocol.ts';
import { SyncIntakeWriter } from './sync-intake-writer.ts';

declare const self: {
  postMessage(message: WriterResponse): void;
  onmessage: ((event: MessageEvent<WriterRequest>) => void) | null;
};

interface Open {
  writer: SyncIntakeWriter;
  commits: GroupCommit<IntakeEntry>;
  /** The clock of the newest batch handed over: the time its transaction records. */
  now: number;
  /** Batches handed over and not yet answered. */
  inFlight: Set<Promise<unknown>>;
}

let open: Open | null = null;

async function closeOpen(): Promise<void> {
  const o = open;
  open = null;
  if (o === null) return;
  await Promise.allSettled([...o.inFlight]);
  o.writer.close();
}

async function handle(msg: WriterRequest): Promise<WriterResponse> {
  switch (msg.type) {
    case 'open': {
      await closeOpen();
      const writer = new SyncIntakeWriter(msg.url, msg.busyTimeoutMs);
      const o: Open = {
        writer,
        now: 0,
        inFlight: new Set(),
        // No cap on a transaction's size here: each handed-over batch (at most the HTTP side's maxBatch)
        // must commit whole or not at all, so the messages that arrived during a commit all go into the
        // next one, never split across two.
        commits: new GroupCommit<IntakeEntry>((batch) => writer.admit(batch, msg.coordinator, o.now), {
          maxBatch: Number.POSITIVE_INFINITY,
        }),
      };
      open = o;
      return { id: msg.id, ok: true };
    }
    case 'admit': {
      const o = open;
      if (o === null) throw new Error('the admission writer has no database open');
      o.now = msg.now;
      const batch = decodeBatch(msg.batch);
      const written = Promise.all(batch.map((a) => o.commits.admit(a)));
      o.inFlight.add(written);
      try {
        return { id: msg.id, ok: true, outcomes: JSON.stringify(await written) };
      } finally {
        o.inFlight.delete(written);
      }
    }
    case 'stats':
      return {
        id: msg.id,
        ok: true,
        stats: open?.commits.stats() ?? { batches: 0, admissions: 0, largest: 0 },
      };
    case 'close':
      await closeOpen();
      return { id: msg.id, ok: true };
  }
}

self.onmessage = (event) => {
  const msg = event.data;
  void (async () => {
    let answer: WriterResponse;
    try {
      answer = await handle(msg);
    } catch (e) {
      const err = e as { message?: unknown; code?: unknown };
      answer = {
        id: msg.id,
        ok: false,
        error: {
          message: String(err?.message ?? e),
          ...(typeof err?.code === 'string' ? { code: err.code } : {}),
        },
      };
    }
    self.postMessage(answer);
  })();
};
