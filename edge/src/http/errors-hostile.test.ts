import { afterAll, describe, expect, test } from 'bun:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DrizzleQueryError } from 'drizzle-orm/errors';
import { createApiKey } from '../auth/api-keys.ts';
import { loneRelay } from '../test-relay.ts';
import { publicReason } from './errors.ts';

/**
 * What a failure tells the caller (a 503's `details.reason`) and anyone (`/healthz`'s
 * `admissions.reason`, which needs no key) must not lay out the relay's machine: a database file that
 * went away names its path in the error the relay logs, never in an answer.
 */
const dir = mkdtempSync(join(tmpdir(), 'synod-errors-hostile-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('publicReason', () => {
  test('file paths are left out; the rest of the message, and its code, stay', () => {
    const e = Object.assign(
      new Error('the database file /srv/synod/private/relay.db was deleted or replaced while it was open'),
      { code: 'DATABASE_FILE_GONE' },
    );
    expect(publicReason(e)).toBe(
      'DATABASE_FILE_GONE: the database file <path> was deleted or replaced while it was open',
    );
    expect(publicReason(new Error('SQLITE_FULL: database or disk is full'))).toBe(
      'SQLITE_FULL: database or disk is full',
    );
    expect(publicReason(new Error(`cannot open C:\\synod\\relay.db or ${dir}/x.db`))).toBe(
      'cannot open <path> or <path>',
    );
    expect(publicReason('x'.repeat(1_000))).toHaveLength(300);
  });

  test("libSQL's Rust errors are said as their variants and the message inside, without the debug noise", () => {
    const delegated = new Error(
      'WriteDelegation(status: Unavailable, message: "error trying to connect: tcp connect error: Connection refused (os error 111)", details: [], metadata: MetadataMap { headers: {} }\n\nCaused by:\n    0: error trying to connect: tcp connect error: Connection refused (os error 111)\n    1: tcp connect error',
    );
    expect(publicReason(delegated)).toBe(
      'WriteDelegation: Unavailable: error trying to connect: tcp connect error: Connection refused (os error 111)',
    );
    expect(publicReason(new Error('Replication(PrimaryHandshakeTimeout)'))).toBe(
      'Replication: PrimaryHandshakeTimeout',
    );
    expect(
      publicReason(
        new Error(
          'Replication(Injector(Sqlite(SqliteFailure(Error { code: DatabaseCorrupt, extended_code: 11 }, Some("database disk image is malformed")))))',
        ),
      ),
    ).toBe('Replication: Injector: Sqlite: SqliteFailure: database disk image is malformed');
    // The server's address inside it is left out as anywhere.
    expect(
      publicReason(
        new Error(
          'WriteDelegation(status: Unavailable, message: "dns error for db.corp.internal:8080", details: [])',
        ),
      ),
    ).toBe('WriteDelegation: Unavailable: dns error for <host>');
    // Its escapes read once: an escaped backslash before an n stays a backslash and an n.
    expect(publicReason(new Error(String.raw`Replication(Other("a\\nb \"q\" c\nd"))`))).toBe(
      String.raw`Replication: Other: a\nb "q" c d`,
    );
    // A long message of many blank lines is read in bounded time, and cut.
    expect(publicReason(new Error(`Replication(${'\n'.repeat(200_000)}x)`)).length).toBeLessThanOrEqual(300);
    // Other text is as it was.
    expect(publicReason(new Error('SQLITE_BUSY: database is locked'))).toBe(
      'SQLITE_BUSY: database is locked',
    );
  });

  test("drizzle's query errors say their cause, not the query and its parameters", () => {
    const cause = Object.assign(new Error('SQLITE_FULL: database or disk is full'), { code: 'SQLITE_FULL' });
    const wrapped = new DrizzleQueryError(
      'insert into "api_keys" ("id", "hash") values (?, ?)',
      ['k', 'h'],
      cause,
    );
    expect(publicReason(wrapped)).toBe('SQLITE_FULL: database or disk is full');
  });

  test("the database server's address is left out: its URL, its host name, its IP address and port (IPv4, IPv6)", () => {
    const coded = (code: string, message: string) => Object.assign(new Error(message), { code });
    expect(publicReason(coded('ENOTFOUND', 'getaddrinfo ENOTFOUND db-primary.corp.internal'))).toBe(
      'ENOTFOUND: getaddrinfo ENOTFOUND <host>',
    );
    expect(publicReason(coded('EAI_AGAIN', 'getaddrinfo EAI_AGAIN db-primary.corp.internal:8080'))).toBe(
      'EAI_AGAIN: getaddrinfo EAI_AGAIN <host>',
    );
    expect(publicReason(coded('ECONNREFUSED', 'connect ECONNREFUSED 10.20.30.40:8080'))).toBe(
      'ECONNREFUSED: connect ECONNREFUSED <address>',
    );
    expect(publicReason(coded('ETIMEDOUT', 'connect ETIMEDOUT [fd00::5]:8080'))).toBe(
      'ETIMEDOUT: connect ETIMEDOUT <address>',
    );
    expect(
      publicReason(
        coded('HRANA_WEBSOCKET_ERROR', "WebSocket connection to 'wss://u:pw@db.corp.internal/' failed"),
      ),
    ).toBe("HRANA_WEBSOCKET_ERROR: WebSocket connection to '<url>' failed");
    expect(
      publicReason(coded('SERVER_ERROR', 'HTTP status 503 from https://db.corp.internal?authToken=abc.')),
    ).toBe('SERVER_ERROR: HTTP status 503 from <url>.');
    // IPv6 without brackets, whole or shortened, with a port or not.
    expect(publicReason(coded('ECONNREFUSED', 'connect ECONNREFUSED ::1:8080'))).toBe(
      'ECONNREFUSED: connect ECONNREFUSED <address>',
    );
    expect(publicReason(new Error('no route to fd00:0:0:0:0:0:0:5 or 2001:db8::17 (EHOSTUNREACH)'))).toBe(
      'no route to <address> or <address> (EHOSTUNREACH)',
    );
    // A host name with a port, wherever it stands (a libSQL client's own messages, a proxy's).
    expect(publicReason(new Error('failed to connect to db-primary.corp.internal:8080: timed out'))).toBe(
      'failed to connect to <host>: timed out',
    );
    expect(publicReason(new Error('stream to localhost:8081 closed'))).toBe('stream to <host> closed');
    // What is not an address stays: a version, a status, a time, a file name, a code path.
    expect(publicReason(new Error('sqld 0.24.1 answered 503 after 1.5 s'))).toBe(
      'sqld 0.24.1 answered 503 after 1.5 s',
    );
    expect(publicReason(new Error('relay.db locked at 12:30:45 in std::io::copy (a:b)'))).toBe(
      'relay.db locked at 12:30:45 in std::io::copy (a:b)',
    );
  });
});

describe('a relay whose database file is deleted', () => {
  test('the 503 and /healthz say why without naming the file', async () => {
    const path = join(dir, 'gone.db');
    const relay = await loneRelay(`file:${path}`, 8, {
      admissionThread: false,
    });
    try {
      const k = createApiKey((n) => crypto.getRandomValues(new Uint8Array(n)));
      await relay.store.createApiKey({ id: k.id, hash: k.hash, label: 't', quotaPerDay: 10 }, Date.now());
      const submit = () =>
        fetch(`${relay.url}/v1/inference`, {
          method: 'POST',
          headers: { authorization: `Bearer ${k.key}`, 'content-type': 'application/json' },
          body: JSON.stringify({ prompt: 'Once upon a time' }),
        });
      expect((await submit()).status).toBe(202);
      rmSync(path);
      const refused = await submit();
      expect(refused.status).toBe(503);
      const body = await refused.text();
      expect(body).toContain('DATABASE_FILE_GONE');
      expect(body).not.toContain(dir);
      const health = await fetch(`${relay.url}/healthz`);
      expect(health.status).toBe(503);
      const healthBody = await health.text();
      expect(healthBody).toContain('DATABASE_FILE_GONE');
      expect(healthBody).not.toContain(dir);
    } finally {
      await relay.stop();
    }
  });
});
