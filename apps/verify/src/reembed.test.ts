import { describe, expect, test } from 'bun:test';
import { USE_LITE_FILE_HASH, USE_LITE_ID } from '@synod/browser-node/inference';
import { loadPinnedEmbedder } from './reembed.ts';
import { VerifyInputError } from './verify-input.ts';

describe('loadPinnedEmbedder', () => {
  test('a frame pinning USE Lite with more bits than it has dimensions cannot be re-embedded: said, not a crash', async () => {
    // The protocol allows up to 8192 bits; USE Lite gives 512.
    const loading = loadPinnedEmbedder({ id: USE_LITE_ID, fileHash: USE_LITE_FILE_HASH, bits: 8192 });
    await expect(loading).rejects.toBeInstanceOf(VerifyInputError);
    await expect(loading).rejects.toThrow(`cannot re-embed with ${USE_LITE_ID}`);
  });
});
