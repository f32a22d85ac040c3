import { describe, expect, test } from 'bun:test';
import { isSynodError } from '../errors.ts';
import { checkNewPassphrase, MIN_PASSPHRASE_LENGTH } from './keystore.ts';

describe('checkNewPassphrase', () => {
  test(`a new key's passphrase has at least ${MIN_PASSPHRASE_LENGTH} characters, counted as typed`, () => {
    expect(() => checkNewPassphrase('correct horse')).not.toThrow();
    expect(() => checkNewPassphrase('12345678')).not.toThrow();
    // Characters, not UTF-16 units nor bytes: eight emoji are eight characters, seven are too few.
    expect(() => checkNewPassphrase('🔑'.repeat(8))).not.toThrow();
    // One character NFKC makes 18 of (U+FDFA) is one character typed.
    for (const short of ['', 'a', '1234567', '🔑'.repeat(7), '\uFDFA']) {
      let caught: unknown;
      try {
        checkNewPassphrase(short);
      } catch (e) {
        caught = e;
      }
      expect(isSynodError(caught) && caught.code).toBe('PASSPHRASE_TOO_SHORT');
      expect(isSynodError(caught) && caught.details).toEqual({
        length: [...short].length,
        minimum: MIN_PASSPHRASE_LENGTH,
      });
    }
  });
});
