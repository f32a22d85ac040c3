/**
 * The contributor app's UI (bundled as app.js beside the browser node's main.js). It only reads and
 * drives `window.synod` (see browser-node/src/browser/main.ts); the follower form talks HTTP to a relay
 * (POST /v1/inference, then the request's SSE stream). No framework: a handful of elements updated in
 * place on every status change.
 */
import { checkNewPassphrase, MIN_PASSPHRASE_LENGTH } from '@synod/shared';
import type { BrowserNodeStatus, LoadState } from '../../browser-node/src/browser/browser-node.ts';
import { BrowserNodeError } from '../../browser-node/src/browser/errors.ts';
import type { SynodPageApi } from '../../browser-node/src/browser/main.ts';
import { PROVEN_SCORE, PROVEN_VOUCHED } from '../../edge/src/relay/proven-nodes.ts';
import type { NodeSummary } from '../../edge/src/store/node-pages.ts';
import { askStatusText, type DeclineLite } from './ask-status.ts';
import { DEFAULT_KEY_ITEM, forgetKey, replaceKey, sealedKeyFile, storedKeyNodeId } from './key-actions.ts';
import { phaseText } from './phase-text.ts';
import { readSealedKeyFile } from './sealed-key-file.ts';
import { STANDING_TIMES, type StandingTimes } from './standing-times.ts';
import { fillRows, type RowCell } from './table-rows.ts';

const $ = <T extends HTMLElement = HTMLElement>(id: string): T => {
  const el = document.getElementById(id);
  if (el === null) throw new Error(`#${id} is missing from index.html`);
  return el as T;
};

function short(id: string | null | undefined, n = 12): string {
  return id ? `${id.slice(0, n)}…` : '—';
}

function text(id: string, value: string): void {
  const el = $(id);
  if (el.textContent !== value) el.textContent = value;
}

function ago(at: number): string {
  const s = Math.max(0, Math.round((Date.now() - at) / 1000));
  return s < 60 ? `${s} s ago` : `${Math.round(s / 60)} min ago`;
}

function cell(value: string, className?: string): RowCell {
  return className ? { text: value, className } : { text: value };
}

/** A URL as the contributor should read it: the path when it is on this site, else the whole URL. */
function source(url: string): string {
  const u = new URL(url, location.href);
  return u.origin === location.origin ? `${u.pathname} (this site)` : u.href;
}

function megabytes(bytes: number): string {
  return (bytes / 1e6).toFixed(1);
}

/**
 * How much of a download is done, beside its phase (not in the phase's live region: a screen reader
 * would read out every step). The engine's download counts bytes (one GGUF file), said in MB; the
 * embedder's counts its files, said as a share only.
 */
function loadAmount(prefix: 'engine' | 'embedder', s: LoadState): string {
  if (s.phase !== 'fetch' || s.total === 0) return '';
  const share = `${Math.floor((100 * s.loaded) / s.total)} %`;
  return prefix === 'engine' ? `${share} (${megabytes(s.loaded)} of ${megabytes(s.total)} MB)` : share;
}

/** A load's phase in words, announced as it changes. */
function loadText(s: LoadState): string {
  switch (s.phase) {
    case 'fetch':
      return 'downloading';
    case 'hash':
      return 'checking its sha256';
    case 'load':
      return 'loading';
    case 'error':
      return `${s.error ?? 'failed'}; tick Serve models to try again`;
    default:
      return s.phase;
  }
}

function renderLoad(prefix: 'engine' | 'embedder', s: LoadState, from: { name: string; url: string }): void {
  const ref = s.ref;
  text(
    `${prefix}-ref`,
    ref === null ? `${from.name}, from ${source(from.url)}` : `${ref.id} (${ref.fileHash.slice(0, 10)}…)`,
  );
  const bar = $<HTMLProgressElement>(`${prefix}-progress`);
  // A load that failed shows no progress (its bytes, all downloaded, were refused), in the error colour.
  const fraction = s.phase === 'ready' ? 1 : s.phase !== 'error' && s.total > 0 ? s.loaded / s.total : 0;
  bar.value = fraction;
  bar.classList.toggle('failed', s.phase === 'error');
  text(`${prefix}-phase`, loadText(s));
  text(`${prefix}-amount`, loadAmount(prefix, s));
  text(`${prefix}-ms`, s.ms === null ? '—' : `${(s.ms / 1000).toFixed(2)} s`);
}

/** Serving changes asked for and not yet applied (see `render`). */
let servingChanges = 0;

/**
 * The page's own error (two passphrases differ, a key not forgotten, a key file refused), shown where
 * the node's are; cleared by the next unlock, forget or load.
 */
let pageError: string | null = null;

function keyItem(api: SynodPageApi): string {
  return api.config.keyItem ?? DEFAULT_KEY_ITEM;
}

/** While locked: requests this key committed to (before a reload or a lock), not finished (see wireNode). */
let committedBefore = 0;
/** Whether another tab of this browser runs the stored key (its Web Lock held), as last looked at. */
let keyRunsElsewhere = false;

function render(api: SynodPageApi): void {
  const s: BrowserNodeStatus = api.status();
  const damaged = storedKeyDamaged(api);
  text(
    'node-id',
    s.nodeId ??
      (damaged
        ? 'the key stored in this browser is damaged (not a sealed key): forget it to create a new one, or load a saved copy'
        : 'no key yet: choose a passphrase to create one'),
  );
  // Running with no peer does nothing for the network: say so rather than just "running".
  text('phase', phaseText(s));
  text('peer-id', s.peerId ?? '—');
  text('peers', String(s.peers.length));
  // Why no bootstrap peer was reached (the transport's latest warning, with its code), until one is.
  const warning = s.transportWarning;
  $('peer-warning-label').hidden = warning === null;
  $('peer-warning').hidden = warning === null;
  text('peer-warning', warning === null ? '' : `${warning.code}: ${warning.message}; ${warning.hint}`);
  text(
    'persistence',
    s.persistent === null
      ? committedBefore > 0
        ? `${committedBefore} committed to by this key and not finished (before a reload or a lock): unlock to finish them (their reveals are due)`
        : '—'
      : `${s.openCommitments} committed to and not finished; ` +
          (s.persistent
            ? 'kept in this browser (IndexedDB): after a reload, the tab finishes them'
            : 'kept in memory only: this browser gives the page no IndexedDB (a private window, or storage blocked for this site), so a reload loses them'),
  );
  // Heartbeats and deadlines keep time in a worker; on the page, a hidden tab's throttling slows them.
  text(
    'timers',
    s.timers.runsIn === 'worker'
      ? 'in a worker'
      : `on the page: ${s.timers.error ?? 'no worker'}, slowed while the tab is hidden`,
  );
  // The page's error comes of the user's latest action (a file refused after a wrong passphrase): it is
  // shown before the node's.
  const error = pageError ?? s.error;
  const err = $('node-error');
  err.hidden = error === null;
  text('node-error', error ?? '');

  const locked = s.phase === 'locked';
  $('unlock-form').hidden = !locked;
  // A stored key can be saved any time (it is sealed); forgotten, or replaced by one loaded from a
  // file, only while this tab does not run it.
  $('key-actions').hidden = s.nodeId === null && !locked;
  $('export-key').hidden = s.nodeId === null;
  // Locking waits for the requests the tab committed to (up to a minute): the button says so meanwhile.
  const lock = $<HTMLButtonElement>('lock-key');
  lock.hidden = s.phase !== 'running' && s.phase !== 'locking';
  lock.disabled = s.phase === 'locking';
  text('lock-key', s.phase === 'locking' ? 'Locking…' : 'Lock');
  // Not offered while another tab runs the key: it would be refused (NODE_KEY_IN_USE) after its confirmation.
  $('forget-key').hidden = !locked || keyRunsElsewhere || (s.nodeId === null && !damaged);
  // Nor loading one in its place (refused, NODE_KEY_IN_USE, before anything is asked: see loadKeyFile).
  $('load-key').hidden = !locked || keyRunsElsewhere;
  text('unlock', s.nodeId || damaged ? 'Unlock node key' : 'Create node key');
  // A new key's passphrase is typed twice: one typed wrong would seal the key for good.
  const creating = s.nodeId === null && !damaged;
  $('passphrase-again-label').hidden = !creating;
  $<HTMLInputElement>('passphrase-again').required = creating;
  const passphrase = $<HTMLInputElement>('passphrase');
  passphrase.setAttribute('autocomplete', creating ? 'new-password' : 'current-password');
  // A new key's passphrase is held to the minimum (checked in code too, as the browser checks only what
  // was typed); a stored key opens with whatever passphrase sealed it.
  if (creating) passphrase.minLength = MIN_PASSPHRASE_LENGTH;
  else passphrase.removeAttribute('minlength');
  text('passphrase-min', String(MIN_PASSPHRASE_LENGTH));
  const serve = $<HTMLInputElement>('serve');
  serve.disabled = s.phase !== 'running';
  // While a change the user asked for is being applied, the box shows what they asked; then what is
  // true (a model that failed to load leaves serving off, and the box unticked).
  if (servingChanges === 0) serve.checked = s.serving;

  renderLoad('engine', s.engine, { name: api.config.model.id, url: api.config.model.url });
  renderLoad('embedder', s.embedder, { name: 'USE Lite', url: api.config.useLite.baseUrl });
  text('engine-id', s.engineId ?? '—');
  text(
    'capability',
    s.capability === null
      ? '—'
      : `${Math.round(s.capability.tokensPerSecond)} tokens/s, ${s.capability.embeddingsPerSecond.toFixed(1)} embeddings/s`,
  );
  text('served', String(s.served));
  const q = s.metrics?.queue;
  text('queue', q ? `${q.queued} waiting of ${q.maxQueue}${q.running ? ', one running' : ''}` : '—');

  fillRows(
    $<HTMLTableSectionElement>('known-nodes'),
    s.knownNodes.map((n) => [
      cell(n.nodeId === s.nodeId ? `${short(n.nodeId)} (this tab)` : short(n.nodeId)),
      cell(n.role),
      cell(n.models.join(', ') || '—'),
      cell(ago(n.at)),
    ]),
    'No heartbeats yet.',
    4,
  );

  fillRows(
    $<HTMLTableSectionElement>('verdicts'),
    s.verdicts.map((v) => [
      cell(short(v.requestId)),
      cell(v.status, v.status === 'accepted' ? 'ok' : 'bad'),
      cell(String(v.accepted.length)),
      cell(v.servedHere ? 'yes' : 'no'),
      cell(v.servedHere ? (v.agreedHere ? 'yes' : 'no') : '—', v.servedHere && !v.agreedHere ? 'bad' : ''),
      cell((v.output ?? '').slice(0, 120)),
    ]),
    'None yet.',
    6,
  );
}

/** Whether something is stored under the key's item that is not a sealed key (cut short, overwritten). */
function storedKeyDamaged(api: SynodPageApi): boolean {
  const item = keyItem(api);
  return localStorage.getItem(item) !== null && storedKeyNodeId(localStorage, item) === null;
}

/** An error as the page shows it: `CODE: message`. */
function errorText(err: unknown): string {
  const code = (err as { code?: unknown }).code;
  return `${typeof code === 'string' ? `${code}: ` : ''}${err instanceof Error ? err.message : String(err)}`;
}

/**
 * Said whenever a key is loaded from a file: a `synod node` identity file, or a key saved from another
 * browser, may still be running there.
 */
const ONE_PLACE =
  'Run a key in one place at a time: stop the synod node or browser tab that runs it elsewhere first. Two copies commit twice to the same requests, which counts against the key; this tab pauses while it hears another copy.';

/**
 * Load a sealed key from a chosen file in place of the stored one (asked first when one is stored):
 * refused at once while another tab runs the stored key (NODE_KEY_IN_USE), checked without a passphrase
 * (sealed-key-file.ts), asked first (saying a key runs in one place at a time), then stored under the
 * key's tab lock. The page then shows its node id and asks for its
 * passphrase, once. A file that is not a sealed key changes nothing.
 */
async function loadKeyFile(api: SynodPageApi, file: File): Promise<void> {
  pageError = null;
  const item = keyItem(api);
  try {
    // Refused before asking anything: another tab runs the stored key (the button is not offered then,
    // but that tab may have taken it since the page last looked).
    if (await api.node.keyInUseElsewhere()) {
      throw new BrowserNodeError(
        'NODE_KEY_IN_USE',
        'the node key stored here is running in another tab of this browser: load a key file there, or close that tab first',
      );
    }
    const key = await readSealedKeyFile(file, api.checkSealedKey);
    const replacing = storedKeyNodeId(localStorage, item);
    const shown = replacing ?? api.status().nodeId ?? 'stored here';
    const sure = confirm(
      `${
        localStorage.getItem(item) === null
          ? `Load the node key ${key.nodeId} from ${file.name}?`
          : replacing === key.nodeId
            ? `${file.name} holds this browser's node key ${key.nodeId}, perhaps sealed with another passphrase. Replace the stored copy with it?`
            : `Replace the node key ${shown} in this browser with ${key.nodeId}, from ${file.name}?\n\nWithout a saved copy the key replaced is gone for good, with its standing at the relay; requests it committed to and has not revealed will count as withheld.`
      }\n\n${ONE_PLACE}`,
    );
    if (!sure) return;
    await replaceKey(localStorage, key, replacing, item);
    // The node's error was about the key replaced (a wrong passphrase): not shown against this one.
    api.node.clearError();
    moveFocus('passphrase', $('key-actions'));
  } catch (err) {
    pageError = errorText(err);
  } finally {
    render(api);
  }
}

/** Focus `id` when focus was lost to the page (the form holding it was hidden) or is still in `from`. */
function moveFocus(id: string, from: HTMLElement): void {
  const at = document.activeElement;
  if (at === null || at === document.body || from.contains(at)) $(id).focus();
}

function wireNode(api: SynodPageApi): void {
  let pending = false;
  const schedule = () => {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => {
      pending = false;
      render(api);
    });
  };
  api.onChange(schedule);
  setInterval(schedule, 1000);
  render(api);
  // Said before a passphrase is typed: another tab runs this key (its Web Lock is held), and requests it
  // committed to before a reload or a lock; looked at every 2 s while this tab is locked, and as it comes to
  // the front.
  const keyInUse = async () => {
    const { phase } = api.status();
    const locked = phase === 'locked';
    const elsewhere = locked && (await api.node.keyInUseElsewhere());
    $('key-in-use').hidden = !elsewhere;
    if (elsewhere !== keyRunsElsewhere) {
      keyRunsElsewhere = elsewhere;
      render(api);
    }
    // And what this key committed to before a reload or a lock, whose reveals wait for it to be unlocked.
    const before = locked ? await api.node.committedBeforeUnlock().catch(() => 0) : 0;
    if (before !== committedBefore) {
      committedBefore = before;
      render(api);
    }
  };
  void keyInUse();
  setInterval(() => void keyInUse(), 2_000);
  window.addEventListener('focus', () => void keyInUse());

  const form = $('unlock-form');
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const input = $<HTMLInputElement>('passphrase');
    const again = $<HTMLInputElement>('passphrase-again');
    const passphrase = input.value;
    const repeated = again.value;
    input.value = '';
    again.value = '';
    pageError = null;
    if (api.status().nodeId === null && !storedKeyDamaged(api)) {
      try {
        // PASSPHRASE_TOO_SHORT: it is all that protects the new key.
        checkNewPassphrase(passphrase);
      } catch (err) {
        pageError = errorText(err);
      }
      if (pageError === null && repeated !== passphrase) {
        pageError = 'PASSPHRASES_DIFFER: the two passphrases differ; type the same one in both fields';
      }
      if (pageError !== null) {
        render(api);
        input.focus();
        return;
      }
    }
    // Once the form is hidden, focus would fall back to the page: it goes to what comes next (the Serve
    // box), or back to the passphrase when it was refused.
    api.unlock(passphrase).then(
      () => {
        render(api);
        moveFocus('serve', form);
      },
      () => {
        render(api);
        moveFocus('passphrase', form);
      },
    );
    schedule();
  });
  $('lock-key').addEventListener('click', () => {
    pageError = null;
    api
      .lock()
      .then((left) => {
        if (left > 0) {
          pageError = `LOCKED_WITH_REQUESTS_OPEN: ${left} committed request(s) did not finish within a minute; unlock again to finish them`;
        }
      })
      .catch((err: unknown) => {
        pageError = errorText(err);
      })
      .finally(() => {
        render(api);
        moveFocus('passphrase', $('key-actions'));
      });
    schedule();
  });
  $('export-key').addEventListener('click', () => {
    const file = sealedKeyFile(localStorage, keyItem(api));
    if (file === null) return;
    const a = document.createElement('a');
    a.href = URL.createObjectURL(new Blob([file.text], { type: 'application/json' }));
    a.download = file.name;
    a.click();
    setTimeout(() => URL.revokeObjectURL(a.href), 10_000);
  });
  $('forget-key').addEventListener('click', () => {
    const nodeId = api.status().nodeId;
    if (nodeId === null && !storedKeyDamaged(api)) return;
    // What is forgotten is what the user is asked about: another tab may store a key meanwhile.
    const confirmedText = localStorage.getItem(keyItem(api));
    const sure = confirm(
      nodeId === null
        ? 'Forget the damaged key stored in this browser?\n\nIt is not a sealed key, so nothing can open it. The next passphrase creates a new key (or load a saved copy of the old one from a file).'
        : `Forget the node key ${nodeId} in this browser?\n\nWithout a saved copy it is gone for good, with its standing at the relay; requests it committed to and has not revealed will count as withheld. The next passphrase creates a new key.`,
    );
    if (!sure) return;
    pageError = null;
    forgetKey(localStorage, keyItem(api), globalThis.navigator?.locks, confirmedText)
      .then(() => {
        api.node.clearError();
      })
      .catch((err: unknown) => {
        pageError = errorText(err);
      })
      .finally(() => {
        render(api);
        moveFocus('passphrase', $('key-actions'));
      });
  });
  const keyFile = $<HTMLInputElement>('key-file');
  $('load-key').addEventListener('click', () => {
    // Cleared first: the same file chosen again (after a refusal) is a change too.
    keyFile.value = '';
    keyFile.click();
  });
  keyFile.addEventListener('change', () => {
    const file = keyFile.files?.[0];
    if (file !== undefined) void loadKeyFile(api, file);
  });
  $<HTMLInputElement>('serve').addEventListener('change', (e) => {
    const on = (e.target as HTMLInputElement).checked;
    servingChanges++;
    api
      .setServing(on)
      .catch(() => undefined)
      .finally(() => {
        servingChanges--;
        schedule();
      });
    schedule();
  });
}

// ---------------------------------------------------------------------------------------------------
// Follower mode: submit a prompt to a relay and watch its status over SSE.

interface RequestViewLite {
  requestId: string;
  status: string;
  error?: unknown;
  commits?: unknown[];
  reveals?: unknown[];
  verdict?: { status: string; winner?: { output: string } | null; accepted?: unknown[] } | null;
  declines?: DeclineLite[];
}

let stream: EventSource | null = null;
/** A reopening of the status stream, waiting (see `follow`). */
let reopen: ReturnType<typeof setTimeout> | null = null;

/** Tries to reopen a status stream that broke off, a second apart, then two, four, eight, then ten. */
const REOPEN_TRIES = 8;

/**
 * How long the relay has to answer the POST /v1/inference before the page gives up on it (Submit is
 * disabled meanwhile); the page's config may shorten it (`askTimeoutMs`, tests).
 */
const ASK_TIMEOUT_MS = 30_000;
let askTimeoutMs = ASK_TIMEOUT_MS;

function showAsk(view: RequestViewLite): void {
  $('ask-result').hidden = false;
  text('ask-id', view.requestId);
  text('ask-status', askStatusText(view));
  text('ask-counts', `${view.commits?.length ?? 0} / ${view.reveals?.length ?? 0}`);
  const v = view.verdict;
  text(
    'ask-answer',
    v ? `${v.status}: ${v.winner?.output ?? '(no winner)'} — ${v.accepted?.length ?? 0} nodes agree` : '…',
  );
}

function askError(message: string | null): void {
  const el = $('ask-error');
  el.hidden = message === null;
  el.textContent = message ?? '';
}

/** One POST at a time: a second press of Submit while the relay answers would ask (and pay) twice. */
async function ask(): Promise<void> {
  const button = $<HTMLButtonElement>('ask');
  if (button.disabled) return;
  button.disabled = true;
  try {
    await submit();
  } finally {
    button.disabled = false;
  }
}

async function submit(): Promise<void> {
  askError(null);
  // The last request's answer is not this one's: an error of this one is not shown beside it.
  $('ask-result').hidden = true;
  stream?.close();
  stream = null;
  if (reopen !== null) clearTimeout(reopen);
  reopen = null;
  const base = $<HTMLInputElement>('relay-url').value.replace(/\/+$/, '');
  const key = $<HTMLInputElement>('api-key').value.trim();
  const prompt = $<HTMLTextAreaElement>('prompt').value;
  const maxTokens = Number($<HTMLInputElement>('max-tokens').value) || 64;
  let res: Response;
  try {
    res = await fetch(`${base}/v1/inference`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ prompt, params: { maxTokens } }),
      // A relay that takes the connection and never answers would otherwise keep Submit disabled.
      signal: AbortSignal.timeout(askTimeoutMs),
    });
  } catch (e) {
    if (e instanceof DOMException && e.name === 'TimeoutError') {
      askError(`${base} did not answer in ${askTimeoutMs / 1000} s; try again, or another relay`);
      return;
    }
    askError(
      `could not reach ${base} (${String(e)}); a relay on another origin must allow this page (synod-relay --cors-origins ${location.origin}), or start the app with --relay`,
    );
    return;
  }
  const body = (await res.json().catch(() => null)) as {
    requestId?: string;
    status?: string;
    links?: { events?: string };
    error?: { code?: string; message?: string; hint?: string };
  } | null;
  if (!res.ok || body?.requestId === undefined) {
    const e = body?.error;
    askError(`HTTP ${res.status}: ${e?.code ?? ''} ${e?.message ?? ''}${e?.hint ? ` (${e.hint})` : ''}`);
    return;
  }
  showAsk({ requestId: body.requestId, status: body.status ?? 'queued' });
  const events = body.links?.events ?? `/v1/inference/${encodeURIComponent(body.requestId)}/events`;
  follow(`${base}${events}`, `${base}/v1/inference/${encodeURIComponent(body.requestId)}`, 0);
}

/**
 * Show a request's status from its event stream until it ends. An EventSource reconnects by itself
 * when a stream breaks off, but gives up for good on an answer that is not a stream (the app's proxy
 * answers 502 while the relay restarts): the stream is then opened again, a few times, before the
 * page says where the status can still be asked.
 */
function follow(url: string, statusUrl: string, tries: number): void {
  const es = new EventSource(url);
  stream = es;
  es.addEventListener('status', (m) => {
    // A reopened stream that answers is a fresh start: a later break gets all its tries again.
    tries = 0;
    askError(null);
    showAsk(JSON.parse((m as MessageEvent<string>).data) as RequestViewLite);
  });
  es.addEventListener('end', () => {
    es.close();
    if (stream === es) stream = null;
  });
  es.onerror = () => {
    if (es.readyState !== EventSource.CLOSED || stream !== es) return;
    if (tries >= REOPEN_TRIES) {
      stream = null;
      askError(
        `the status stream closed and could not be opened again: GET ${statusUrl} has the request's status`,
      );
      return;
    }
    const seconds = Math.min(2 ** tries, 10);
    askError(
      `the status stream broke off (the relay restarted, or is gone): opening it again in ${seconds} s`,
    );
    reopen = setTimeout(() => {
      reopen = null;
      if (stream === es) follow(url, statusUrl, tries + 1);
    }, seconds * 1000);
  };
}

function wireFollower(relayDefault: string | null): void {
  const url = $<HTMLInputElement>('relay-url');
  if (relayDefault !== null) url.value = new URL(relayDefault, location.href).href;
  const form = $('ask-form');
  // The last attempt's error does not stand for the next: cleared as a field changes, and as Submit is
  // pressed, even when the browser refuses a field (an "invalid" event, no submit) and nothing is posted.
  form.addEventListener('input', () => askError(null));
  form.addEventListener('invalid', () => askError(null), true);
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    void ask();
  });
}

// ---------------------------------------------------------------------------------------------------
// Standing: what the relay's history says of this node (reputation from verdicts), polled.

/** One entry of the relay's `GET /v1/nodes` (JSON), as the relay declares it. */
type NodeRow = Pick<NodeSummary, 'nodeId' | 'lastSeen' | 'reputation'>;

/** The standing panel's figures, blanked together when the relay cannot give them. */
const STANDING_FIGURES = [
  'standing-commits',
  'standing-agreement',
  'standing-vouched',
  'standing-rank',
  'standing-faults',
  'standing-seen',
] as const;

async function refreshStanding(api: SynodPageApi, relay: string, timeoutMs: number): Promise<void> {
  const nodeId = api.status().nodeId;
  if (nodeId === null) return;
  let row: NodeRow | undefined;
  try {
    // A relay that takes the connection and never answers (hung, overloaded) is as unreachable as one
    // that refuses it.
    const r = await fetch(`${relay.replace(/\/+$/, '')}/v1/nodes?node=${nodeId}`, {
      signal: AbortSignal.timeout(timeoutMs),
    });
    if (!r.ok) throw new Error(`HTTP ${r.status}`);
    row = ((await r.json()) as { nodes: NodeRow[] }).nodes.find((n) => n.nodeId === nodeId);
  } catch (e) {
    // Not the last answer's figures as if they were current: none, until the relay answers again.
    // A fetch that failed (the relay down, refused, a network error) is a TypeError whose message is the
    // browser's ("Failed to fetch"): said in words.
    const why =
      e instanceof DOMException && e.name === 'TimeoutError'
        ? `no answer within ${timeoutMs / 1000} s`
        : e instanceof TypeError
          ? 'it did not answer: it is stopped, restarting, or out of reach'
          : e instanceof Error
            ? e.message
            : String(e);
    text('standing-score', `the relay could not be asked (${why})`);
    for (const id of STANDING_FIGURES) text(id, '—');
    return;
  }
  if (row === undefined) {
    text('standing-score', 'not seen by the relay yet (it learns of a node from its heartbeats)');
    for (const id of STANDING_FIGURES) text(id, '—');
    return;
  }
  const rep = row.reputation;
  text('standing-score', rep.score.toFixed(3));
  text('standing-commits', String(rep.commits));
  text('standing-agreement', `${rep.agreements} / ${rep.disagreements}`);
  // A relay before this field existed sends none: said as unknown, not as zero.
  // Proven takes both (proven-nodes.ts): the vouched agreements, and a reputation that stays high enough.
  text(
    'standing-vouched',
    rep.vouched === undefined
      ? '—'
      : `${rep.vouched}: ${rep.vouched >= PROVEN_VOUCHED && rep.score >= PROVEN_SCORE ? 'proven' : 'not proven yet'} (proven takes ${PROVEN_VOUCHED} of these and a reputation of at least ${PROVEN_SCORE.toFixed(3)})`,
  );
  text(
    'standing-rank',
    rep.standing === undefined
      ? '—'
      : `${rep.standing} (ranks this node for the seat left to nodes without a record; higher first)`,
  );
  text('standing-faults', `${rep.withheld} / ${rep.invalid}`);
  // The relay writes a node's heartbeat once in 30 s (it hears one every 10 s): up to about 30 s is
  // current, said so rather than read as a fault.
  text(
    'standing-seen',
    `${ago(row.lastSeen)}${Date.now() - row.lastSeen < 45_000 ? ' (the relay records a heartbeat every 30 s)' : ''}`,
  );
}

/**
 * Asked every 15 s, and on the node's own changes (a heartbeat, a verdict) at most every 5 s (see
 * standing-times.ts); one ask at a time (asks that pile up on a slow relay would hold the page's few
 * connections to its server).
 */
function wireStanding(api: SynodPageApi, relay: string | null, times: StandingTimes): void {
  if (relay === null) return;
  $('standing').hidden = false;
  let last = 0;
  let asking = false;
  const refresh = () => {
    if (asking) return;
    asking = true;
    last = Date.now();
    void refreshStanding(api, relay, times.timeoutMs).finally(() => {
      asking = false;
    });
  };
  api.onChange(() => {
    if (Date.now() - last >= times.onChangeMs) refresh();
  });
  setInterval(refresh, times.everyMs);
  refresh();
}

async function start(): Promise<void> {
  const ready = window.synodReady;
  if (ready === undefined) throw new Error('main.js (the browser node) did not load');
  const api = await ready;
  wireNode(api);
  // The browser's own "leave the site?" question while the tab has requests it committed to and not
  // finished (it shows no text of ours): closing it now withholds their reveals, which costs its standing
  // at the relay (NOT_REVEALED), unless it is back in time.
  window.addEventListener('beforeunload', (e) => {
    if (api.status().openCommitments > 0) e.preventDefault();
  });
  const page = api.config as {
    relay?: string | null;
    standing?: Partial<StandingTimes>;
    askTimeoutMs?: number;
  };
  const relay = page.relay ?? null;
  askTimeoutMs = page.askTimeoutMs ?? ASK_TIMEOUT_MS;
  wireFollower(relay);
  wireStanding(api, relay, { ...STANDING_TIMES, ...page.standing });
}

function whenNodeScriptRan(): Promise<void> {
  if (window.synodReady !== undefined) return Promise.resolve();
  return new Promise((resolve) => {
    const check = () => (window.synodReady !== undefined ? resolve() : setTimeout(check, 20));
    check();
  });
}

whenNodeScriptRan()
  .then(start)
  .catch((e) => {
    const el = $('node-error');
    el.hidden = false;
    el.textContent = `The app could not start: ${String(e)}`;
  });
