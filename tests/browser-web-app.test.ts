/**
 * The contributor web app in headless Chromium, driven through its UI only (clicks and form fields):
 * create the node key (a passphrase too short refused), toggle serving on (models load in the worker,
 * with progress) and off, and ask the network in follower mode: POST /v1/inference to a real relay
 * (edge, libSQL, three headless nodes on an in-memory network) through the app's same-origin relay
 * proxy, then watch the request's SSE stream until the verdict shows on the page (an error of the last
 * attempt cleared by the next). The sealed key saved to a file in this browser loads in another (a
 * second Chromium, its own profile) and unlocks there; so does a `synod node` identity file; a file
 * that is not a sealed key is refused, and none is loaded in a tab while another tab runs the stored
 * key. A typo'd passphrase leaves the tab locked. Where the node's timers run is on the page.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MIN_PASSPHRASE_LENGTH } from '@synod/shared';
import type { BrowserContext, Page } from 'playwright-core';
import { startWebServer, type WebServer } from '../apps/web/serve.ts';
import type {} from '../browser-node/src/browser/main.ts';
import { loadOrCreateIdentity } from '../browser-node/src/cli/identity-file.ts';
import { startTestNetwork, type TestNetwork } from '../edge/src/test-helpers.ts';
import { type Chrome, launchChromium } from './support/chromium.ts';

const LONG = 180_000;
const PASSPHRASE = 'a passphrase only this test knows';
const KEY_ITEM = 'synod.node-key.v1';

/** Choose `file` in the file chooser that "Load a sealed key from a file…" opens. */
async function loadKeyFile(page: Page, file: string | { name: string; mimeType: string; buffer: Buffer }) {
  const chooser = page.waitForEvent('filechooser');
  await page.click('#load-key');
  await (await chooser).setFiles(file);
}

/**
 * A second browser's page, the errors it throws and the dialogs it shows, each answered as `answer`
 * says when it shows (accepted by default).
 */
async function otherBrowser(answer: () => boolean = () => true) {
  const chrome = await launchChromium();
  const page = chrome.context.pages()[0] ?? (await chrome.context.newPage());
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  const asked: string[] = [];
  page.on('dialog', (d) => {
    asked.push(d.message());
    void (answer() ? d.accept() : d.dismiss());
  });
  return { chrome, page, errors, asked };
}

describe('the contributor web app', () => {
  let net: TestNetwork;
  let web: WebServer;
  let context: BrowserContext;
  let chrome: Chrome | undefined;
  let page: Page;
  const offsite: string[] = [];
  const pageErrors: string[] = [];

  beforeAll(
    async () => {
      net = await startTestNetwork({ nodes: 3 });
      web = await startWebServer({
        relayUrl: net.relay.url,
        config: { heartbeatMs: 2_000, scryptN: 2 ** 10, dbName: `synod-web-test-${Date.now()}` },
      });
      chrome = await launchChromium();
      context = chrome.context;
      page = context.pages()[0] ?? (await context.newPage());
      page.on('request', (r) => {
        const url = r.url();
        if (!url.startsWith(web.url) && !url.startsWith('blob:') && !url.startsWith('data:'))
          offsite.push(url);
      });
      page.on('pageerror', (e) => pageErrors.push(String(e)));
      await page.goto(web.url);
    },
    { timeout: LONG },
  );

  afterAll(
    async () => {
      await page?.evaluate(() => window.synod?.stop()).catch(() => {});
      await chrome?.close();
      await web?.stop();
      await net?.close();
    },
    { timeout: 60_000 },
  );

  test(
    'create the node key, serve models with progress, stop serving',
    async () => {
      await page.waitForSelector('#unlock:has-text("Create node key")', { timeout: 30_000 });
      // A new key's passphrase has at least 8 characters (it is all that protects the key): the browser
      // refuses a shorter one typed…
      expect(await page.getAttribute('#passphrase', 'minlength')).toBe(String(MIN_PASSPHRASE_LENGTH));
      expect(await page.textContent('#unlock-hint')).toContain('The passphrase is all that protects it');
      await page.fill('#passphrase', 'short');
      await page.fill('#passphrase-again', 'short');
      await page.click('#unlock');
      expect(await page.$eval('#passphrase', (e) => (e as HTMLInputElement).validity.tooShort)).toBe(true);
      // …and the page one filled in by a script (a password manager), with its code.
      await page.$eval('#unlock-form', (form) => {
        for (const id of ['passphrase', 'passphrase-again'])
          (document.getElementById(id) as HTMLInputElement).value = 'short';
        (form as HTMLFormElement).requestSubmit();
      });
      await page.waitForSelector('#node-error:has-text("PASSPHRASE_TOO_SHORT")', { timeout: 10_000 });
      expect(await page.textContent('#node-error')).toBe(
        'PASSPHRASE_TOO_SHORT: a passphrase for a new key needs at least 8 characters (this one has 5)',
      );
      expect(await page.textContent('#phase')).toBe('locked');
      expect(await page.evaluate((item) => localStorage.getItem(item), KEY_ITEM)).toBeNull();
      await page.fill('#passphrase', 'a passphrase only this test knows');
      // A new key's passphrase is typed twice.
      await page.fill('#passphrase-again', 'a passphrase only this test knows');
      await page.click('#unlock');
      await page.waitForSelector('#phase:has-text("running as follower")', { timeout: 60_000 });
      const nodeId = (await page.textContent('#node-id')) ?? '';
      expect(nodeId).toMatch(/^[0-9a-f]{64}$/);
      expect(await page.isHidden('#unlock-form')).toBe(true);
      // Its timers run in their worker, said beside the other figures of the node.
      expect(await page.textContent('#timers')).toBe('in a worker');
      expect(
        await page.evaluate(() => document.getElementById('timers')?.previousElementSibling?.textContent),
      ).toBe('Node timers');

      await page.check('#serve');
      await page.waitForSelector('#phase:has-text("running as node")', { timeout: 120_000 });
      // This page was given no bootstrap peer: it says that no request can reach it, rather than only
      // "running".
      expect(await page.textContent('#phase')).toBe(
        'running as node, but connected to no peer: no request can reach this tab',
      );
      expect(await page.textContent('#engine-phase')).toBe('ready');
      // Announced to screen readers: the state, errors, the download progress bars by name.
      expect(await page.getAttribute('#phase', 'role')).toBe('status');
      expect(await page.getAttribute('#node-error', 'role')).toBe('alert');
      expect(await page.getAttribute('#engine-progress', 'aria-label')).toBe('Engine model download');
      expect(await page.getAttribute('#embedder-progress', 'aria-label')).toBe('Embedder model download');
      expect(await page.textContent('#embedder-phase')).toBe('ready');
      expect(await page.textContent('#engine-ref')).toContain('stories260K');
      expect(await page.textContent('#embedder-ref')).toContain('use-lite-512');
      expect(await page.textContent('#engine-id')).toBe('wllama@3.8.1');
      expect(await page.textContent('#capability')).toMatch(/\d+ tokens\/s, [\d.]+ embeddings\/s/);
      // The node hears itself (its own heartbeat) and lists its model.
      await page.waitForSelector('#known-nodes:has-text("(this tab)")', { timeout: 30_000 });

      // Its standing at the relay: unknown until the relay hears of it; then what the relay's history
      // holds (seeded here: this relay's network is not the tab's) shows within seconds.
      expect(await page.isVisible('#standing')).toBe(true);
      await page.waitForSelector('#standing-score:has-text("not seen by the relay yet")', {
        timeout: 30_000,
      });
      const at = Date.now();
      await net.relay.client.execute({
        sql: `INSERT INTO nodes (node_id, role, software, last_heartbeat, last_heartbeat_id, models, embedders,
                tokens_per_second, embeddings_per_second, first_seen, last_seen)
              VALUES (?, 'node', 'synod-web/test', '{}', ?, '[]', '[]', 0, 0, ?, ?)`,
        args: [nodeId, 'f'.repeat(64), at, at],
      });
      await net.relay.client.execute({
        sql: `INSERT INTO reputation (node_id, agreements, disagreements, withheld, invalid, commits,
                latency_samples, score, updated_at) VALUES (?, 4, 1, 0, 0, 5, 0, 0.725, ?)`,
        args: [nodeId, at],
      });
      await page.waitForSelector('#standing-score:text-is("0.725")', { timeout: 30_000 });
      expect(await page.textContent('#standing-commits')).toBe('5');
      expect(await page.textContent('#standing-agreement')).toBe('4 / 1');
      expect(await page.textContent('#standing-faults')).toBe('0 / 0');

      await page.uncheck('#serve');
      // Paused: the queue advertises no room (heartbeat capacity 0) and the page says so.
      await page.waitForSelector('#queue:has-text("of 0")', { timeout: 30_000 });
      expect(await page.evaluate(() => window.synod?.status().serving)).toBe(false);
      expect(await page.textContent('#node-id')).toBe(nodeId);
    },
    LONG,
  );

  test(
    'follower mode: a prompt submitted with an API key reaches a verdict, streamed over SSE',
    async () => {
      expect(await page.inputValue('#relay-url')).toBe(`${web.url}/relay`);
      await page.fill('#api-key', net.apiKey);
      await page.fill('#prompt', 'Once upon a time');
      await page.fill('#max-tokens', '24');
      await page.click('#ask');
      await page.waitForSelector('#ask-status:text-is("verdict")', { timeout: 120_000 });
      expect(await page.textContent('#ask-id')).toMatch(/^[0-9a-f]{64}$/);
      expect(await page.textContent('#ask-counts')).toBe('3 / 3');
      const answer = (await page.textContent('#ask-answer')) ?? '';
      expect(answer).toStartWith('accepted: ');
      expect(answer).toContain('3 nodes agree');
      expect(await page.isHidden('#ask-error')).toBe(true);

      // A wrong key is refused with the relay's error, shown on the page.
      await page.fill('#api-key', 'synod_sk_not-a-real-key');
      await page.click('#ask');
      await page.waitForSelector('#ask-error:has-text("HTTP 401")', { timeout: 30_000 });
      // The last request's answer is not left beside it.
      expect(await page.isHidden('#ask-result')).toBe(true);
      // Nor is that error left beside the next attempt: a field changed…
      await page.fill('#api-key', net.apiKey);
      expect(await page.isHidden('#ask-error')).toBe(true);
      await page.fill('#api-key', 'synod_sk_not-a-real-key');
      await page.click('#ask');
      await page.waitForSelector('#ask-error:has-text("HTTP 401")', { timeout: 30_000 });
      // …or Submit pressed with a field the browser refuses (nothing is posted).
      await page.$eval('#max-tokens', (e) => {
        (e as HTMLInputElement).value = '0';
      });
      await page.click('#ask');
      expect(await page.$eval('#max-tokens', (e) => (e as HTMLInputElement).validity.valid)).toBe(false);
      expect(await page.isHidden('#ask-error')).toBe(true);
      await page.fill('#max-tokens', '24');

      expect(offsite).toEqual([]);
      expect(pageErrors).toEqual([]);
    },
    LONG,
  );

  test(
    'after a reload the sealed key is still there: a wrong passphrase is refused, the right one opens it',
    async () => {
      const before = (await page.textContent('#node-id')) ?? '';
      await page.reload();
      await page.waitForSelector('#unlock:has-text("Unlock node key")', { timeout: 30_000 });
      expect(await page.textContent('#node-id')).toBe(before);
      expect(await page.textContent('#phase')).toBe('locked');
      // An existing key opens with the passphrase that sealed it, however short: no minimum asked.
      expect(await page.getAttribute('#passphrase', 'minlength')).toBeNull();

      await page.fill('#passphrase', 'not the passphrase');
      await page.click('#unlock');
      await page.waitForSelector('#node-error:has-text("KEY_WRONG_PASSPHRASE")', { timeout: 30_000 });
      expect(await page.isVisible('#unlock-form')).toBe(true);
      // A typo leaves the tab locked, the error said beside it: not a bare "error" state.
      expect(await page.textContent('#phase')).toBe('locked');

      await page.fill('#passphrase', 'a passphrase only this test knows');
      await page.click('#unlock');
      await page.waitForSelector('#phase:has-text("running as follower")', { timeout: 60_000 });
      expect(await page.textContent('#node-id')).toBe(before);
      expect(await page.isHidden('#node-error')).toBe(true);
      expect(pageErrors).toEqual([]);
    },
    LONG,
  );

  test(
    'a page without Worker says its timers run on the page, why, and that a hidden tab slows them',
    async () => {
      const bare = await context.newPage();
      const errors: string[] = [];
      bare.on('pageerror', (e) => errors.push(String(e)));
      try {
        await bare.addInitScript(() => {
          Object.defineProperty(window, 'Worker', { value: undefined, configurable: true });
        });
        await bare.goto(web.url);
        await bare.waitForSelector('#timers:has-text("on the page")', { timeout: 30_000 });
        expect(await bare.textContent('#timers')).toBe(
          'on the page: TIMER_WORKER_UNAVAILABLE: this page has no Worker or no Blob URLs, slowed while the tab is hidden',
        );
        expect(errors).toEqual([]);
      } finally {
        await bare.close();
      }
    },
    LONG,
  );

  test(
    'a damaged stored key is said as such, with a code, and can be forgotten; the next passphrase creates a new key',
    async () => {
      const { chrome: other, page: b, errors, asked } = await otherBrowser();
      try {
        await b.goto(web.url);
        await b.waitForSelector('#unlock:has-text("Create node key")', { timeout: 30_000 });
        // Cut short, as a storage written half way would leave it.
        await b.evaluate((item) => localStorage.setItem(item, '{"v":1,"kind":"synod-node-key"'), KEY_ITEM);
        await b.reload();
        await b.waitForSelector('#node-id:has-text("damaged")', { timeout: 30_000 });
        expect(await b.textContent('#unlock')).toBe('Unlock node key');
        expect(await b.isHidden('#passphrase-again')).toBe(true);
        expect(await b.isVisible('#forget-key')).toBe(true);
        // Unlocking says what is wrong with a code, not a JSON parser's message.
        await b.fill('#passphrase', 'any passphrase');
        await b.click('#unlock');
        await b.waitForSelector('#node-error:has-text("KEYSTORE_MALFORMED")', { timeout: 30_000 });
        expect(await b.textContent('#node-error')).toBe(
          'KEYSTORE_MALFORMED: the node key stored in this browser is damaged: it is not a sealed key',
        );
        // Forgotten after a confirmation that says what it is: then a new key is made as on a fresh browser.
        await b.click('#forget-key');
        await b.waitForSelector('#unlock:has-text("Create node key")', { timeout: 10_000 });
        expect(asked).toHaveLength(1);
        expect(asked[0]).toContain('Forget the damaged key stored in this browser?');
        expect(await b.evaluate((item) => localStorage.getItem(item), KEY_ITEM)).toBeNull();
        await b.fill('#passphrase', PASSPHRASE);
        await b.fill('#passphrase-again', PASSPHRASE);
        await b.click('#unlock');
        await b.waitForSelector('#phase:has-text("running as follower")', { timeout: 60_000 });
        expect(await b.textContent('#node-id')).toMatch(/^[0-9a-f]{64}$/);
        expect(errors).toEqual([]);
        await b.evaluate(() => window.synod?.stop()).catch(() => {});
      } finally {
        await other.close();
      }
    },
    LONG,
  );

  test(
    'the sealed key saved here loads in another browser and unlocks there; a CLI identity file loads too; a file that is not a key is refused',
    async () => {
      const nodeId = (await page.textContent('#node-id')) ?? '';
      expect(nodeId).toMatch(/^[0-9a-f]{64}$/);
      const download = page.waitForEvent('download');
      await page.click('#export-key');
      const saved = (await (await download).path()) as string;

      const dir = mkdtempSync(join(tmpdir(), 'synod-web-key-'));
      let answer = true;
      const { chrome: other, page: b, errors, asked } = await otherBrowser(() => answer);
      try {
        const stored = () => b.evaluate((item) => localStorage.getItem(item), KEY_ITEM);
        await b.goto(web.url);
        await b.waitForSelector('#unlock:has-text("Create node key")', { timeout: 30_000 });
        // No key here: it can be loaded, not saved nor forgotten.
        expect(await b.isVisible('#load-key')).toBe(true);
        expect(await b.isHidden('#export-key')).toBe(true);
        expect(await b.isHidden('#forget-key')).toBe(true);

        // Nothing stored to replace: asked once all the same, saying the key must run in one place only
        // (the file may be a key another browser or a synod node still runs). Dismissed, nothing is
        // stored; accepted, the page shows the key's id and asks its passphrase once (an existing key),
        // with focus in the field.
        answer = false;
        await loadKeyFile(b, saved);
        for (let i = 0; i < 100 && asked.length === 0; i++) await Bun.sleep(50);
        expect(asked).toHaveLength(1);
        expect(asked[0]).toContain(`Load the node key ${nodeId}`);
        expect(asked[0]).toContain('Run a key in one place at a time');
        expect(await stored()).toBeNull();
        expect(await b.textContent('#unlock')).toBe('Create node key');
        answer = true;
        await loadKeyFile(b, saved);
        await b.waitForSelector(`#node-id:text-is("${nodeId}")`, { timeout: 10_000 });
        expect(await b.textContent('#unlock')).toBe('Unlock node key');
        expect(await b.isHidden('#passphrase-again')).toBe(true);
        expect(asked).toHaveLength(2);
        asked.length = 0;
        expect(await stored()).toBe(readFileSync(saved, 'utf8'));
        await b.waitForFunction(() => document.activeElement?.id === 'passphrase', null, { timeout: 5_000 });
        await b.keyboard.type(PASSPHRASE);
        await b.keyboard.press('Enter');
        await b.waitForSelector('#phase:has-text("running as follower")', { timeout: 60_000 });
        expect(await b.textContent('#node-id')).toBe(nodeId);
        // Running: no key is loaded over it.
        expect(await b.isHidden('#load-key')).toBe(true);

        // A CLI identity file (pretty-printed, scrypt at its default cost).
        const cliPassphrase = 'the CLI node passphrase';
        const identity = join(dir, 'identity.json');
        const cli = await loadOrCreateIdentity(identity, cliPassphrase);
        expect(cli.created).toBe(true);

        // Not while another tab of this browser runs the stored key.
        const second = await other.context.newPage();
        second.on('pageerror', (e) => errors.push(String(e)));
        second.on('dialog', (d) => {
          asked.push(d.message());
          void d.accept();
        });
        await second.goto(web.url);
        await second.waitForSelector('#unlock:has-text("Unlock node key")', { timeout: 30_000 });
        // Said as the page opens, and loading a key file is not offered…
        await second.waitForSelector('#key-in-use', { state: 'visible', timeout: 10_000 });
        expect(await second.isHidden('#load-key')).toBe(true);
        // …and a file chosen all the same is refused before anything is asked.
        await second.setInputFiles('#key-file', identity);
        await second.waitForSelector('#node-error:has-text("NODE_KEY_IN_USE")', { timeout: 10_000 });
        expect(asked).toEqual([]);
        expect(await second.textContent('#node-id')).toBe(nodeId);
        expect(await stored()).toBe(readFileSync(saved, 'utf8'));
        await second.close();

        // Locked again (a reload), a wrong passphrase typed: a file that is not a sealed key is refused,
        // said in place of the passphrase's error, asking nothing and changing nothing.
        await b.reload();
        await b.waitForSelector('#unlock:has-text("Unlock node key")', { timeout: 30_000 });
        await b.fill('#passphrase', 'not the passphrase');
        await b.click('#unlock');
        await b.waitForSelector('#node-error:has-text("KEY_WRONG_PASSPHRASE")', { timeout: 30_000 });
        const broken = JSON.parse(readFileSync(saved, 'utf8')) as Record<string, unknown>;
        delete broken['cipher'];
        await loadKeyFile(b, {
          name: 'broken.json',
          mimeType: 'application/json',
          buffer: Buffer.from(JSON.stringify(broken)),
        });
        await b.waitForSelector('#node-error:has-text("KEY_FILE_MALFORMED")', { timeout: 10_000 });
        expect(await b.textContent('#node-error')).toStartWith(
          'KEY_FILE_MALFORMED: broken.json is not a sealed Synod node key (cipher: is missing)',
        );
        await loadKeyFile(b, { name: 'notes.txt', mimeType: 'text/plain', buffer: Buffer.from('hello') });
        await b.waitForSelector('#node-error:has-text("notes.txt is not a sealed Synod node key")', {
          timeout: 10_000,
        });
        expect(asked).toEqual([]);
        expect(await b.textContent('#node-id')).toBe(nodeId);
        expect(await stored()).toBe(readFileSync(saved, 'utf8'));

        // The CLI key replaces the stored one only once confirmed.
        answer = false;
        await loadKeyFile(b, identity);
        // Nothing changed: the passphrase's error is back in place of the file's.
        await b.waitForSelector('#node-error:has-text("KEY_WRONG_PASSPHRASE")', { timeout: 10_000 });
        expect(asked).toHaveLength(1);
        expect(asked[0]).toContain(nodeId);
        expect(asked[0]).toContain(cli.key.nodeId);
        expect(asked[0]).toContain('stop the synod node or browser tab that runs it elsewhere first');
        expect(await stored()).toBe(readFileSync(saved, 'utf8'));
        answer = true;
        await loadKeyFile(b, identity);
        await b.waitForSelector(`#node-id:text-is("${cli.key.nodeId}")`, { timeout: 10_000 });
        expect(asked).toHaveLength(2);
        expect(JSON.parse((await stored()) ?? '')).toEqual(JSON.parse(readFileSync(identity, 'utf8')));
        // The wrong passphrase was the other key's: not held against this one, in the error or the state.
        expect(await b.isHidden('#node-error')).toBe(true);
        expect(await b.evaluate(() => window.synod?.status().error)).toBeNull();
        expect(await b.textContent('#phase')).toBe('locked');
        expect(await b.isHidden('#passphrase-again')).toBe(true);
        await b.fill('#passphrase', cliPassphrase);
        await b.click('#unlock');
        await b.waitForSelector('#phase:has-text("running as follower")', { timeout: 60_000 });
        expect(await b.evaluate(() => window.synod?.status().nodeId)).toBe(cli.key.nodeId);
        expect(errors).toEqual([]);
        await b.evaluate(() => window.synod?.stop()).catch(() => {});
      } finally {
        await other.close();
        rmSync(dir, { recursive: true, force: true });
      }
    },
    LONG,
  );
});
