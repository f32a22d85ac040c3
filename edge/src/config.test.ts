import { describe, expect, test } from 'bun:test';
import {
  isIpAddress,
  parseCorsOrigins,
  parseDbUrl,
  parseEnvName,
  parseList,
  parsePort,
  parseWholeNumber,
} from './config.ts';

describe('parseCorsOrigins', () => {
  test('origins, or *; blanks dropped', () => {
    expect(parseCorsOrigins('')).toEqual([]);
    expect(parseCorsOrigins('*')).toEqual(['*']);
    expect(parseCorsOrigins(' https://app.example , http://127.0.0.1:8788,')).toEqual([
      'https://app.example',
      'http://127.0.0.1:8788',
    ]);
  });

  test.each([
    'app.example',
    'https://app.example/',
    'https://app.example/path',
    'ftp://app.example',
    'https://a b',
  ])('%p is not a web origin', (bad) => {
    expect(() => parseCorsOrigins(`https://ok.example,${bad}`)).toThrow(`not a web origin: ${bad.trim()}`);
  });
});

describe('flag values', () => {
  test('ports: 0-65535 in decimal digits', () => {
    expect(parsePort('--port', '0')).toBe(0);
    expect(parsePort('--port', '65535')).toBe(65535);
    for (const bad of ['', ' 80', '80 ', '1e3', '0x50', '-1', '65536', '8.0', '123456']) {
      expect(() => parsePort('--port', bad)).toThrow(
        `--port must be a port number (0-65535, digits only), got ${JSON.stringify(bad)}`,
      );
    }
  });

  test('whole numbers within bounds', () => {
    expect(parseWholeNumber('--n', '7', 1, 10, 'from 1 to 10')).toBe(7);
    for (const bad of ['0', '11', '', '1.0', '1e1', '+5']) {
      expect(() => parseWholeNumber('--n', bad, 1, 10, 'from 1 to 10')).toThrow(
        `--n must be from 1 to 10, got`,
      );
    }
  });

  test('lists: at least one entry, none empty, each checked', () => {
    expect(parseList('--models', ' a , b', 'model ids')).toEqual(['a', 'b']);
    for (const bad of ['', ',', 'a,', ',a', 'a,,b', 'a, ,b']) {
      expect(() => parseList('--models', bad, 'model ids')).toThrow('without empty entries');
    }
    expect(() => parseList('--x', 'a,B', 'letters', (e) => (e === 'B' ? 'upper case' : undefined))).toThrow(
      '--x: upper case, got "B"',
    );
  });

  test('environment variable names; a bad one is not repeated', () => {
    expect(parseEnvName('--e', 'SYNOD_PASSPHRASE')).toBe('SYNOD_PASSPHRASE');
    for (const bad of ['', '1X', 'A-B', 'my secret']) {
      expect(() => parseEnvName('--e', bad)).toThrow('--e must name an environment variable');
      try {
        parseEnvName('--e', bad);
      } catch (e) {
        if (bad !== '') expect((e as Error).message).not.toContain(bad);
      }
    }
  });

  test('IP addresses', () => {
    for (const ok of ['127.0.0.1', '0.0.0.0', '::1', '::', 'fe80::1', '::ffff:127.0.0.1']) {
      expect(isIpAddress(ok)).toBe(true);
    }
    for (const bad of ['localhost', '256.0.0.1', '1.2.3', '[::1]', '', '1:2:3:4:5:6:7:8:9', 'example.com']) {
      expect(isIpAddress(bad)).toBe(false);
    }
  });

  test('database URLs: a file, or a libSQL server', () => {
    expect(parseDbUrl('--db', 'file:.data/relay/history.db')).toEqual({
      kind: 'file',
      url: 'file:.data/relay/history.db',
      path: '.data/relay/history.db',
    });
    expect(parseDbUrl('--db', 'file:///tmp/r.db')).toMatchObject({ kind: 'file', path: '/tmp/r.db' });
    for (const ok of [
      'http://127.0.0.1:8080',
      'https://db.example',
      'libsql://x.turso.io',
      'https://h?tls=1',
    ]) {
      expect(parseDbUrl('--db', ok)).toEqual({ kind: 'server', url: ok });
    }
    const expected = '--db must be file:PATH, http(s)://HOST or libsql://HOST';
    expect(() => parseDbUrl('--db', 'relay.db')).toThrow(
      `${expected}, got "relay.db" (a file is file:relay.db)`,
    );
    for (const bad of [
      '',
      'file:',
      ':memory:',
      'file::memory:',
      'postgres://h/db',
      'http://',
      'http://a b',
      'ws://h',
    ]) {
      expect(() => parseDbUrl('--db', bad)).toThrow(expected);
    }
    expect(() => parseDbUrl('--db', 'http://h:70000')).toThrow(expected);
    expect(() => parseDbUrl('--db', 'http://h/db')).toThrow('(a libSQL server URL has no path)');
    expect(() => parseDbUrl('--db', 'http://h?mode=ro')).toThrow('(unknown query parameter mode)');
    // Credentials are not repeated.
    expect(() => parseDbUrl('--db', 'https://u:pw@h/x?authToken=tok')).toThrow(
      'got "https://h/x?authToken=…"',
    );
  });
});
