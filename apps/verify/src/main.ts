#!/usr/bin/env bun
/**
 * `synod-verify`: re-derive a Synod verdict from its transcript on your own machine, trusting no relay;
 * with `--relay URL`, every verdict a relay has published (audit.ts); with `--chain` and `--oracle`, every
 * answer and refund a SynodOracle wrote on chain (chain-audit.ts, refund-audit.ts).
 * Checks every signature, commitment, the seal and the consensus (`verifyTranscript` of @synod/shared),
 * and compares the result with a digest or root you expect (from a chain event, a verdict packet) and
 * with whatever the source claims. `synod-verify --help` for the flags.
 *
 * Exit codes: 0 the transcript holds and everything compared matches; 1 it does not hold, or something
 * compared does not match; 2 bad usage, an input that is not a transcript, or a source, relay or chain
 * that cannot be read (with `--json`, `{ok: false, error: {code, message}}` on standard output too);
 * 3 an audit audited nothing, or left requests unchecked (rate-limited past the retries).
 */
import { statSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { escapeUnshown } from '@synod/shared';
import { archiveLines, auditArchive, formatArchiveAudit } from './archive.ts';
import { type AuditReport, auditRelay, formatAudit } from './audit.ts';
import { auditChain } from './chain-audit.ts';
import { formatChainAudit } from './chain-report.ts';
import {
  checkFileSize,
  describeAnswer,
  fetchText,
  MAX_SOURCE_BYTES,
  readBoundedFile,
  readBoundedText,
} from './fetch-text.ts';
import { printableJson } from './printable.ts';
import { loadPinnedEmbedder } from './reembed.ts';
import { formatReport, reportJson, verifyInput } from './report.ts';
import { parseDigest, readVerifyInput, VerifyInputError } from './verify-input.ts';

const HELP = `synod-verify: re-derive Synod verdicts from their transcripts, trusting no relay.

usage: synod-verify SOURCE [--coordinator IDS] [--expect-digest HEX] [--expect-root HEX] [--reembed [--noise-tolerance-bits N]] [--json]
       synod-verify --relay URL [--coordinator IDS] [--limit N] [--model ID] [--node ID] [--json]
       synod-verify --chain RPC_URL --oracle ADDR --relay URL [--coordinator IDS] [--from-block N] [--limit N] [--json]

  SOURCE               a transcript file (JSON), - for standard input, or an http(s) URL such as
                       a relay's /v1/verify/<requestId> (only its transcript is used; redirects are
                       followed within its origin only); a history prune archive (JSON Lines), or
                       lines of one, is verified line by line (a line repeated is counted once)
  --coordinator IDS    the node id (or ids, comma-separated) of the coordinator you trust: a
                       request signed by any other key does not hold (COORDINATOR_NOT_PINNED).
                       Without it, any key may have coordinated: node keys cost nothing; nothing
                       is pinned (--relay warns of requests another key than its /healthz one
                       signed, --chain of none)
  --expect-digest HEX  the verdict digest you expect (e.g. LLMFulfilled's verdictDigest; 0x optional)
  --expect-root HEX    the transcript root you expect
  --reembed            embed each member's output again here with the embedder the frame pins (USE
                       Lite, checked against its file hash); a reveal whose bits are not its output's
                       does not hold (EMBEDDING_DISAGREES)
  --noise-tolerance-bits N  with --reembed: bits a reveal may differ from this machine's       [0]
  --relay URL          audit a relay: every request in its history with a verdict (or no consensus),
                       newest first, re-derived here and compared with what the relay published
  --chain RPC_URL      audit a SynodOracle instead: each answer it wrote on chain (LLMFulfilled), from
  --oracle ADDR        its transcript at --relay, re-derived here: answer, digest and root must be the
  --from-block N       derived ones, and the question the one asked on chain (LLMRequested)     [0]
                       Each refund (LLMRefunded) too: NO_CONSENSUS re-derived from its transcript,
                       INVALID_INPUT and FRAME_OUT_OF_RANGE re-checked against the question,
                       ANSWER_TOO_LARGE against the chain (the winner's fulfil estimated at the
                       block before the refund); one by anyone after the
                       deadline, or for a reason nothing outside can re-derive (timeouts, reorg
                       conflicts), is listed as not re-derivable and fails nothing, unless the relay
                       holds an accepted verdict of that question (an answer not delivered)
  --limit N            most requests to audit                                  [1000]
  --model ID, --node ID  only requests that accepted that model, or that node took part in
  --json               print the result as JSON; when it cannot be checked or the command
                       line is wrong (exit code 2), {"ok": false, "error": {"code", "message"}}
                       (code VERIFY_USAGE for the command line)
  --timeout-s N        how long to wait for each URL                           [30]

exit code 0: it holds (all of them hold, refunds not re-derivable aside) and everything compared
matches; 1: it does not (one does not); 2: bad usage, an input that is not a transcript, or a relay or
chain that cannot be read; 3: an audit audited nothing (an empty history, a --model or --node that
matched nothing, no settlement in range), or left requests unchecked (rate-limited past the retries)`;

/**
 * A source's text, what to call it in errors, and the request it was asked for when its URL names one
 * (`/v1/verify/<id>`).
 */
interface Source {
  text: string;
  from: string;
  requestId?: string;
}

async function readSource(source: string, timeoutS: number): Promise<Source> {
  if (source === '-') {
    return {
      text: await readBoundedText(Bun.stdin.stream(), MAX_SOURCE_BYTES, 'input'),
      from: 'the standard input',
    };
  }
  if (/^https?:\/\//.test(source)) {
    const r = await fetchText(source, timeoutS, 'transcript');
    if (!r.text.includes('"transcript"') && !r.text.includes('"packets"')) {
      throw new VerifyInputError(
        `${source} answered ${r.status} without a transcript: ${describeAnswer(r.text)}`,
      );
    }
    // A relay answers 422 with the transcript when it finds it does not hold: verify it here anyway.
    // Any other failure is the relay's, whatever its body holds: not a transcript it stands by.
    if (!r.ok && r.status !== 422) {
      throw new VerifyInputError(`${source} answered ${r.status}: ${describeAnswer(r.text)}`);
    }
    const requestId = requestIdOfUrl(source);
    return {
      text: r.text,
      from: `the transcript at ${source}`,
      ...(requestId !== undefined ? { requestId } : {}),
    };
  }
  const what = `file ${source}`;
  try {
    checkFileSize(statSync(source).size, MAX_SOURCE_BYTES, what);
    return { text: await readBoundedFile(source, MAX_SOURCE_BYTES, what), from: `the ${what}` };
  } catch (e) {
    if (e instanceof VerifyInputError) throw e;
    throw new VerifyInputError(`cannot read ${source}: ${(e as Error).message}`);
  }
}

/**
 * The request a relay URL asks for (`…/v1/verify/<id>`): the transcript served must be that request's,
 * or it answers another question. Lowercased as relays read it (request ids have no capitals; a chain
 * id may be written with a checksummed address).
 */
function requestIdOfUrl(url: string): string | undefined {
  const m = /\/v1\/verify\/([^/?#]+)\/?$/.exec(new URL(url).pathname);
  if (!m) return undefined;
  const segment = m[1] as string;
  try {
    return decodeURIComponent(segment).toLowerCase();
  } catch {
    return segment.toLowerCase();
  }
}

const MAX_TIMEOUT_S = 86_400;
/** Most ids `--coordinator` takes (the relays over one database, say). */
const MAX_COORDINATORS = 64;

/** `--coordinator`: node ids (64 hex digits, any case), comma-separated; a `VERIFY_USAGE` error else. */
function parseCoordinators(text: string): string[] {
  const ids = [...new Set(text.split(',').map((x) => x.trim().toLowerCase()))];
  if (ids.length > MAX_COORDINATORS || !ids.every((id) => /^[0-9a-f]{64}$/.test(id))) {
    throw new VerifyInputError(
      `--coordinator must be node ids (64 hex digits each), comma-separated, at most ${MAX_COORDINATORS}`,
      'VERIFY_USAGE',
    );
  }
  return ids;
}

/** `--timeout-s`: decimal seconds (not '', '1e3', '0x10' or 'Infinity'), above 0, at most a day. */
function parseTimeout(text: string): number | undefined {
  if (!/^\d{1,5}(?:\.\d{1,3})?$/.test(text)) return undefined;
  const s = Number(text);
  return s > 0 && s <= MAX_TIMEOUT_S ? s : undefined;
}

/** The command line's flags, as parseArgs gives them. */
interface Flags {
  coordinator?: string;
  'expect-digest'?: string;
  'expect-root'?: string;
  reembed?: boolean;
  'noise-tolerance-bits'?: string;
  json?: boolean;
  relay?: string;
  chain?: string;
  oracle?: string;
  'from-block'?: string;
  limit?: string;
  model?: string;
  node?: string;
  help?: boolean;
  'timeout-s'?: string;
}

async function main(argv: string[]): Promise<number> {
  let values: Flags;
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({
      args: argv,
      allowPositionals: true,
      strict: true,
      options: {
        coordinator: { type: 'string' },
        'expect-digest': { type: 'string' },
        'expect-root': { type: 'string' },
        reembed: { type: 'boolean', default: false },
        'noise-tolerance-bits': { type: 'string' },
        json: { type: 'boolean', default: false },
        relay: { type: 'string' },
        chain: { type: 'string' },
        oracle: { type: 'string' },
        'from-block': { type: 'string', default: '0' },
        limit: { type: 'string', default: '1000' },
        model: { type: 'string' },
        node: { type: 'string' },
        'timeout-s': { type: 'string', default: '30' },
        help: { type: 'boolean', default: false },
      },
    }));
  } catch (e) {
    // The flags could not be parsed, so `--json` is looked for in the arguments themselves.
    return badUsage((e as Error).message, argv.includes('--json'));
  }
  const json = values.json === true;
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  const [source, ...extra] = positionals;
  const timeoutS = parseTimeout(values['timeout-s'] ?? '');
  if (timeoutS === undefined) {
    return badUsage(`--timeout-s must be a number of seconds, above 0 and at most ${MAX_TIMEOUT_S}`, json);
  }
  if (values.relay !== undefined || values.chain !== undefined || values.oracle !== undefined) {
    return audit(values, positionals, timeoutS);
  }
  if (source === undefined || extra.length > 0) {
    return badUsage(source === undefined ? 'give a SOURCE, or --relay' : 'give one SOURCE', json);
  }
  const toleranceText = values['noise-tolerance-bits'];
  if (toleranceText !== undefined && (!values.reembed || !/^\d{1,4}$/.test(toleranceText))) {
    return badUsage('--noise-tolerance-bits goes with --reembed and is a whole number of bits', json);
  }
  try {
    const expectDigest =
      values['expect-digest'] === undefined
        ? undefined
        : parseDigest('--expect-digest', values['expect-digest']);
    const expectRoot =
      values['expect-root'] === undefined ? undefined : parseDigest('--expect-root', values['expect-root']);
    const coordinators = values.coordinator === undefined ? undefined : parseCoordinators(values.coordinator);
    const read = await readSource(source, timeoutS);
    const pin =
      coordinators === undefined
        ? null
        : { ids: coordinators, by: 'the coordinator pinned by --coordinator' };
    // A history-prune archive (JSON Lines), or lines of one: each line verified, as an audit.
    const archive = /^https?:\/\//.test(source) ? null : archiveLines(read.text);
    if (archive !== null) {
      if (expectDigest !== undefined || expectRoot !== undefined || values.reembed) {
        return badUsage(
          `${read.from} holds several lines (an archive): --expect-digest, --expect-root and --reembed check one transcript`,
          json,
        );
      }
      const r = await auditArchive(archive, read.from, pin);
      console.log(values.json ? printableJson(r) : formatArchiveAudit(r));
      return auditExitCode(r);
    }
    const report = await verifyInput(
      readVerifyInput(read.text, read.from),
      {
        ...(expectDigest !== undefined ? { expectDigest } : {}),
        ...(expectRoot !== undefined ? { expectRoot } : {}),
        ...(read.requestId !== undefined ? { expectRequestId: read.requestId } : {}),
        ...(pin !== null ? { coordinators: pin } : {}),
      },
      values.reembed
        ? { load: loadPinnedEmbedder, noiseToleranceBits: Number(toleranceText ?? '0') }
        : undefined,
    );
    console.log(values.json ? printableJson(reportJson(report)) : formatReport(report));
    return report.ok ? 0 : 1;
  } catch (e) {
    if (e instanceof VerifyInputError) return cannotCheck(e, json);
    throw e;
  }
}

/**
 * An audit's exit code: 1 when a request (or the relay itself) fails, else 3 when it audited nothing (an
 * empty history, a filter that matched nothing, an oracle with no settlement in range) or is incomplete
 * (requests it listed could not be checked: rate-limited past the retries), else 0.
 */
function auditExitCode(r: AuditReport): number {
  if (r.failures.length > 0 || r.problems.length > 0) return 1;
  return r.unchecked.length > 0 || r.incomplete !== null || r.nothing !== null ? 3 : 0;
}

/** A command line that is wrong (exit code 2): as a source that cannot be checked, `VERIFY_USAGE`. */
function badUsage(why: string, json: boolean): number {
  return cannotCheck(new VerifyInputError(why, 'VERIFY_USAGE'), json);
}

/**
 * A source, relay or chain that could not be checked (exit code 2): the reason on standard error and,
 * with `--json`, as one JSON value on standard output too, `{ok: false, error: {code, message}}`, so
 * that a script reading the output tells "could not check" from "does not hold" by its code. A usage
 * error (`VERIFY_USAGE`) has the help after its reason.
 */
function cannotCheck(e: VerifyInputError, json: boolean): number {
  // The message may quote a relay's answer or a file: escaped as everything printed (printable.ts).
  console.error(`synod-verify: ${escapeUnshown(e.message)}${e.code === 'VERIFY_USAGE' ? `\n\n${HELP}` : ''}`);
  if (json) console.log(printableJson({ ok: false, error: { code: e.code, message: e.message } }));
  return 2;
}

/**
 * `--relay URL`: audit the relay's published history (audit.ts); with `--chain` and `--oracle`, audit
 * what the oracle wrote on chain, reading the transcripts from the relay (chain-audit.ts).
 */
async function audit(values: Flags, positionals: string[], timeoutS: number): Promise<number> {
  const limitText = values.limit ?? '';
  const limit = /^\d{1,9}$/.test(limitText) ? Number(limitText) : Number.NaN;
  const relay = values.relay ?? '';
  const usage = (why: string) => badUsage(why, values.json === true);
  if (positionals.length > 0) return usage('give a SOURCE or --relay, not both');
  if (values.reembed || values['noise-tolerance-bits'] !== undefined) {
    return usage('--reembed checks one transcript (a SOURCE), not an audit');
  }
  if (values['expect-digest'] !== undefined || values['expect-root'] !== undefined) {
    return usage(
      '--expect-digest and --expect-root compare one transcript; --relay compares each with what was published',
    );
  }
  if (!/^https?:\/\/[^/]/.test(relay)) return usage('--relay must be an http(s) URL');
  if (!(limit >= 1)) return usage('--limit must be a whole number >= 1');
  const onChain = values.chain !== undefined || values.oracle !== undefined;
  if (onChain) {
    if (!/^https?:\/\/[^/]/.test(values.chain ?? ''))
      return usage('--chain must be the http(s) URL of a JSON-RPC endpoint');
    if (!/^0x[0-9a-fA-F]{40}$/.test(values.oracle ?? '')) return usage('--oracle must be a 0x address');
    if (!/^\d{1,20}$/.test(values['from-block'] ?? '')) return usage('--from-block must be a block number');
    if (values.model !== undefined || values.node !== undefined)
      return usage('--model and --node filter a relay audit, not a chain audit');
  }
  let coordinators: string[] | undefined;
  try {
    coordinators = values.coordinator === undefined ? undefined : parseCoordinators(values.coordinator);
  } catch (e) {
    if (e instanceof VerifyInputError) return usage(e.message);
    throw e;
  }
  try {
    let report: AuditReport;
    let text: string;
    if (onChain) {
      const r = await auditChain({
        rpcUrl: values.chain as string,
        oracle: values.oracle as `0x${string}`,
        relay,
        fromBlock: BigInt(values['from-block'] as string),
        limit,
        timeoutS,
        ...(coordinators !== undefined ? { coordinators } : {}),
      });
      [report, text] = [r, formatChainAudit(r)];
    } else {
      const r = await auditRelay({
        relay,
        limit,
        timeoutS,
        ...(coordinators !== undefined ? { coordinators } : {}),
        ...(values.model !== undefined ? { model: values.model } : {}),
        ...(values.node !== undefined ? { node: values.node } : {}),
      });
      [report, text] = [r, formatAudit(r)];
    }
    console.log(values.json ? printableJson(report) : text);
    return auditExitCode(report);
  } catch (e) {
    if (e instanceof VerifyInputError) return cannotCheck(e, values.json === true);
    throw e;
  }
}

process.exit(await main(process.argv.slice(2)));
