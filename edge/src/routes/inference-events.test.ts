/**
 * GET /v1/inference/:id/events across reconnections: each `status` event's id is a digest of its data,
 * so a client reconnecting with `Last-Event-ID` (as an EventSource does) is sent only what it does not
 * hold yet, and once it holds a request's final status the relay answers 204, which ends an EventSource.
 * A real relay over HTTP with real serving nodes (stories260K + USE Lite).
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { STREAMS_PER_ADDRESS } from '../http/stream-slots.ts';
import { startTestNetwork, submitPrompt, type TestNetwork } from '../test-helpers.ts';
import { waitUntil } from '../test-servers.ts';

interface SseEvent {
  event?: string;
  id?: string;
  data?: string;
  comment?: string;
}

/** Server-sent events as the standard frames them: blocks split by a blank line, field per line. */
function parseSse(text: string): SseEvent[] {
  const events: SseEvent[] = [];
  for (const block of text.split(/\n\n/)) {
    if (block.trim() === '') continue;
    const e: SseEvent = {};
    for (const line of block.split('\n')) {
      if (line.startsWith(':')) e.comment = line.slice(1).trim();
      else {
        const at = line.indexOf(':');
        const field = line.slice(0, at);
        const value = line.slice(at + 1).replace(/^ /, '');
        if (field === 'event' || field === 'id') e[field] = value;
        else if (field === 'data') e.data = e.data === undefined ? value : `${e.data}\n${value}`;
      }
    }
    events.push(e);
  }
  return events;
}

const submit = (t: TestNetwork) => submitPrompt(t);

const events = (t: TestNetwork, requestId: string, lastEventId?: string) =>
  fetch(`${t.relay.url}/v1/inference/${requestId}/events`, {
    headers: lastEventId === undefined ? {} : { 'last-event-id': lastEventId },
  });

describe('events of a request that reaches its verdict', () => {
  let t: TestNetwork;
  beforeAll(async () => {
    t = await startTestNetwork();
  }, 120_000);
  afterAll(async () => {
    await t?.close();
  });

  test('ids name the status they carry; a reconnection gets what changed, or 204 once it holds the end', async () => {
    const requestId = await submit(t);
    const first = parseSse(await (await events(t, requestId)).text());
    const statuses = first.filter((e) => e.event === 'status');
    expect(statuses.length).toBeGreaterThan(0);
    expect(first.at(-1)?.event).toBe('end');
    const ids = statuses.map((e) => e.id);
    expect(new Set(ids).size).toBe(ids.length);
    const last = JSON.parse(statuses.at(-1)?.data ?? '{}') as {
      status: string;
      seal: { members: { nodeId: string }[] };
      attestations: { nodeId: string; agrees: boolean }[];
    };
    expect(last.status).toBe('verdict');
    // The stream ends once the seal members' attestations of the verdict are in (they are signed moments
    // after it): a client that stops at `end` holds them.
    expect(last.attestations.map((a) => a.nodeId).sort()).toEqual(
      last.seal.members.map((m) => m.nodeId).sort(),
    );
    expect(last.attestations.every((a) => a.agrees)).toBe(true);
    const held = await events(t, requestId, statuses.at(-1)?.id);
    expect(held.status).toBe(204);

    const whole = parseSse(await (await events(t, requestId)).text());
    expect(whole.map((e) => e.event)).toEqual(['status', 'end']);
    const final = whole[0] as SseEvent;

    // The client holds the final status: nothing more will come, and 204 says so.
    const done = await events(t, requestId, final.id);
    expect(done.status).toBe(204);
    expect(await done.text()).toBe('');

    // A client that was cut off earlier (here: at the first status) gets the final status and the end.
    expect(JSON.parse(statuses[0]?.data ?? '{}').status).not.toBe('verdict');
    const resumed = parseSse(await (await events(t, requestId, statuses[0]?.id)).text());
    expect(resumed.map((e) => [e.event, e.id])).toEqual([
      ['status', final.id],
      ['end', undefined],
    ]);
    expect(resumed[0]?.data).toBe(final.data);

    // An id the relay never sent is a client holding nothing it knows of: the whole stream again.
    const unknown = parseSse(await (await events(t, requestId, '5')).text());
    expect(unknown.map((e) => [e.event, e.id])).toEqual([
      ['status', final.id],
      ['end', undefined],
    ]);
  }, 120_000);
});

describe('events of a request still queued', () => {
  let t: TestNetwork;
  beforeAll(async () => {
    // Nothing is dispatched: the request stays queued, its status unchanged.
    t = await startTestNetwork({ nodes: 1, maxOpenRequests: 0, config: { sseKeepAliveMs: 300 } });
  }, 120_000);
  afterAll(async () => {
    await t?.close();
  });

  /** The events of a stream up to its first keep-alive comment, then the stream is dropped. */
  async function untilKeepAlive(r: Response): Promise<SseEvent[]> {
    const reader = (r.body as ReadableStream<Uint8Array>).getReader();
    const decoder = new TextDecoder();
    let text = '';
    try {
      while (!text.includes(': keep-alive')) {
        const { done, value } = await reader.read();
        if (done) break;
        text += decoder.decode(value, { stream: true });
      }
    } finally {
      await reader.cancel();
    }
    return parseSse(text);
  }

  test('a reconnection with the status it holds is not sent it again', async () => {
    const requestId = await submit(t);
    const first = await untilKeepAlive(await events(t, requestId));
    const queued = first.filter((e) => e.event === 'status');
    expect(queued).toHaveLength(1);
    expect(JSON.parse(queued[0]?.data ?? '{}').status).toBe('queued');
    expect(first.at(-1)?.comment).toBe('keep-alive');

    const again = await events(t, requestId, queued[0]?.id);
    expect(again.status).toBe(200);
    expect((await untilKeepAlive(again)).map((e) => e.event ?? `:${e.comment}`)).toEqual([':keep-alive']);
  }, 60_000);

  test('one address holds at most 32 streams open: the next is 429 RATE_LIMITED until one closes', async () => {
    const requestId = await submit(t);
    const open = await Promise.all(Array.from({ length: STREAMS_PER_ADDRESS }, () => events(t, requestId)));
    const readers = open.map((r) => {
      expect(r.status).toBe(200);
      return (r.body as ReadableStream<Uint8Array>).getReader();
    });
    try {
      // Every stream is running (its first status sent) before the next is asked for.
      await Promise.all(readers.map((r) => r.read()));
      const refused = await events(t, requestId);
      expect(refused.status).toBe(429);
      expect(refused.headers.get('retry-after')).toBe('5');
      expect(await refused.json()).toMatchObject({
        error: { code: 'RATE_LIMITED', details: { open: STREAMS_PER_ADDRESS, limit: STREAMS_PER_ADDRESS } },
      });
      // A stream closed by its client gives its place back.
      await readers.pop()?.cancel();
      await waitUntil('a stream closed is given back', async () => {
        const r = await events(t, requestId);
        if (r.status !== 200) return false;
        readers.push((r.body as ReadableStream<Uint8Array>).getReader());
        return true;
      });
    } finally {
      await Promise.all(readers.map((r) => r.cancel()));
    }
  }, 60_000);
});
