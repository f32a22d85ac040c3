import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, readdir, rename, rm, stat } from 'node:fs/promises';
import { dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import type { LoadProgress, OnLoadProgress } from './engine.ts';
import { InferenceError } from './errors.ts';
import { canonicalManifest, compareUtf8, verifyHash } from './hashing.ts';

export { canonicalManifest, verifyHash };

/**
 * The models directory of a headless node (Bun or Node): model ids resolve to files in one configurable
 * folder through a small manifest, every model gets a sha256 (the `fileHash` that goes into every
 * commitment), and a missing model can be downloaded from the Hugging Face hub URL pattern with its
 * sha256 checked while it streams in.
 *
 * Hashes: a single-file model's hash is the sha256 of its bytes; a folder model's is the sha256 of its
 * canonical manifest of (relative path, sha256) pairs, defined in `hashing.ts` (it is `sha256sum`
 * output sorted by path, so anyone can recompute it with coreutils).
 */

export type ModelFormat = 'gguf' | 'transformers' | 'tfjs-graph';

export interface HubSource {
  /** Hugging Face repository, e.g. `ggml-org/models`. */
  repo: string;
  /** Branch, tag or commit; defaults to `main`. Pin a commit in production. */
  revision?: string;
  /** Files to fetch, relative to the repo root. A file model has exactly one. */
  files: string[];
  /**
   * For a folder model: the prefix stripped from each hub path to get its path inside the folder
   * (default: none).
   */
  stripPrefix?: string;
}

export interface ModelManifestEntry {
  /** `file`: one file (GGUF); `folder`: a directory of files (transformers.js layout). */
  kind: 'file' | 'folder';
  /** Path relative to the models directory. */
  path: string;
  format: ModelFormat;
  /** Expected sha256 (file) or manifest hash (folder). When set, resolve() verifies it. */
  sha256?: string;
  /** Where a real deployment downloads the model from. */
  hub?: HubSource;
}

export type ModelManifest = Readonly<Record<string, ModelManifestEntry>>;

/** The models Synod knows by default (the ids requests name in `acceptedModels`). */
export const DEFAULT_MODEL_MANIFEST: ModelManifest = {
  stories260K: {
    kind: 'file',
    path: 'stories260K.gguf',
    format: 'gguf',
    sha256: '270cba1bd5109f42d03350f60406024560464db173c0e387d91f0426d3bd256d',
    hub: { repo: 'ggml-org/models', files: ['tinyllamas/stories260K.gguf'] },
  },
  'glove-static-100d': {
    kind: 'folder',
    path: 'glove-static-100d',
    format: 'transformers',
    sha256: 'a21389cb4b49e27e27d41822ddd2bb3a27404804bcf819ade52dbe73c4d03808',
  },
};

export interface ResolvedModel {
  id: string;
  kind: 'file' | 'folder';
  format: ModelFormat;
  /** Absolute path of the file or folder. */
  path: string;
  /** sha256 of the file, or of the folder's canonical manifest. */
  fileHash: string;
}

export const DEFAULT_HUB_BASE_URL = 'https://huggingface.co';

/** The Hugging Face download URL of one file: `<base>/<repo>/resolve/<revision>/<file>`. */
export function hubFileUrl(
  hub: Pick<HubSource, 'repo' | 'revision'>,
  file: string,
  baseUrl = DEFAULT_HUB_BASE_URL,
) {
  const path = file.split('/').map(encodeURIComponent).join('/');
  return `${baseUrl.replace(/\/+$/, '')}/${hub.repo}/resolve/${encodeURIComponent(hub.revision ?? 'main')}/${path}`;
}

// ---------------------------------------------------------------------------------------------------
// Hashing

const hashCache = new Map<string, string>();

/** Forget every cached file hash (tests, or after files were replaced in place with the same mtime). */
export function clearHashCache(): void {
  hashCache.clear();
}

/**
 * sha256 of a file, streamed (never the whole file in memory), cached by absolute path, size and mtime:
 * a file replaced in place gets a new mtime and is hashed again.
 */
export async function sha256File(path: string, onProgress?: OnLoadProgress): Promise<string> {
  const abs = resolve(path);
  let info: Awaited<ReturnType<typeof stat>>;
  try {
    info = await stat(abs);
  } catch (cause) {
    const errno = (cause as NodeJS.ErrnoException).code;
    if (errno !== 'ENOENT' && errno !== 'ENOTDIR') throw unreadable(abs, cause);
    throw new InferenceError('MODEL_NOT_FOUND', `no file at ${abs}`, { details: { path: abs }, cause });
  }
  const key = `${abs}\0${info.size}\0${info.mtimeMs}`;
  const cached = hashCache.get(key);
  if (cached !== undefined) {
    onProgress?.({ loaded: info.size, total: info.size, phase: 'hash' });
    return cached;
  }
  const hash = createHash('sha256');
  let loaded = 0;
  try {
    for await (const chunk of createReadStream(abs)) {
      const bytes = chunk as Buffer;
      hash.update(bytes);
      loaded += bytes.length;
      onProgress?.({ loaded, total: info.size, phase: 'hash' });
    }
  } catch (cause) {
    throw unreadable(abs, cause);
  }
  const hex = hash.digest('hex');
  hashCache.set(key, hex);
  return hex;
}

/** MODEL_UNREADABLE: the file is there, and reading it failed (its mode, a folder in its place, the disk). */
function unreadable(abs: string, cause: unknown): InferenceError {
  const errno = (cause as NodeJS.ErrnoException).code ?? null;
  const reason = cause instanceof Error ? cause.message : String(cause);
  return new InferenceError('MODEL_UNREADABLE', `cannot read the model file ${abs}: ${reason}`, {
    details: { path: abs, errno },
    hint:
      errno === 'EACCES' || errno === 'EPERM'
        ? `let the user running the node read it (and enter its folders): chmod a+r ${abs}, or chown it`
        : errno === 'EISDIR'
          ? `${abs} is a folder: put the model's file there instead`
          : `check that ${abs} can be read (cat it to /dev/null); copy it again if the disk reports errors`,
    cause,
  });
}

/** Every regular file under `dir`, as `/`-separated paths relative to it, sorted in byte order. */
export async function listFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string) => {
    for (const entry of await readdir(d, { withFileTypes: true })) {
      const full = join(d, entry.name);
      if (entry.isDirectory()) await walk(full);
      else if (entry.isFile()) out.push(relative(dir, full).split(sep).join('/'));
    }
  };
  await walk(dir);
  return out.sort(compareUtf8);
}

export function sha256Text(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}

/**
 * Manifest hash of a set of files in a folder (the listed files only, e.g. a package's weight files
 * without its JavaScript), or of every file in it when `files` is omitted.
 */
export async function sha256Folder(
  dir: string,
  files?: readonly string[],
  onProgress?: OnLoadProgress,
): Promise<{ fileHash: string; manifest: string }> {
  const abs = resolve(dir);
  let list: readonly string[];
  try {
    list = files ?? (await listFiles(abs));
  } catch (cause) {
    throw new InferenceError('MODEL_NOT_FOUND', `no folder at ${abs}`, { details: { path: abs }, cause });
  }
  if (list.length === 0) {
    throw new InferenceError('MODEL_NOT_FOUND', `folder ${abs} has no files`, { details: { path: abs } });
  }
  const entries: Array<{ path: string; sha256: string }> = [];
  for (const [i, rel] of list.entries()) {
    entries.push({ path: rel, sha256: await sha256File(join(abs, rel)) });
    onProgress?.({ loaded: i + 1, total: list.length, phase: 'hash' });
  }
  const manifest = canonicalManifest(entries);
  return { fileHash: sha256Text(manifest), manifest };
}

// ---------------------------------------------------------------------------------------------------
// Downloads

export interface DownloadOptions {
  url: string;
  /** Where the file ends up; it is written to `<dest>.part` first and renamed once verified. */
  dest: string;
  /** Expected sha256; when it does not match, the partial file is deleted and MODEL_HASH_MISMATCH thrown. */
  sha256?: string;
  /** Model id, for error messages. */
  id?: string;
  onProgress?: OnLoadProgress;
  fetch?: typeof fetch;
  signal?: AbortSignal;
}

/**
 * Download one file with `fetch`, hashing it while it streams to disk. Returns its sha256. Non-2xx
 * statuses and network errors are MODEL_FETCH_FAILED; a wrong hash is MODEL_HASH_MISMATCH, and nothing
 * is left at `dest` in either case.
 */
export async function downloadFile(options: DownloadOptions): Promise<string> {
  const { url, dest, onProgress } = options;
  const id = options.id ?? url;
  const doFetch = options.fetch ?? fetch;
  let response: Response;
  try {
    response = await doFetch(url, options.signal === undefined ? {} : { signal: options.signal });
  } catch (cause) {
    throw new InferenceError('MODEL_FETCH_FAILED', `could not fetch ${url}`, {
      details: { id, url },
      hint: 'check the network and the hub base URL',
      cause,
    });
  }
  if (!response.ok || response.body === null) {
    throw new InferenceError('MODEL_FETCH_FAILED', `fetching ${url} answered HTTP ${response.status}`, {
      details: { id, url, status: response.status },
      hint: response.status === 404 ? 'the repository, revision or file name is wrong' : 'retry later',
    });
  }
  const total = Number(response.headers.get('content-length') ?? 0) || 0;
  const part = `${dest}.part`;
  await mkdir(dirname(dest), { recursive: true });
  const hash = createHash('sha256');
  const out = createWriteStream(part);
  let loaded = 0;
  try {
    const reader = response.body.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      hash.update(value);
      loaded += value.length;
      if (!out.write(value)) await new Promise<void>((r) => out.once('drain', () => r()));
      onProgress?.({ loaded, total, phase: 'fetch' } satisfies LoadProgress);
    }
    await new Promise<void>((res, rej) => out.end((err?: Error | null) => (err ? rej(err) : res())));
  } catch (cause) {
    out.destroy();
    await rm(part, { force: true });
    throw new InferenceError('MODEL_FETCH_FAILED', `download of ${url} broke off after ${loaded} bytes`, {
      details: { id, url, loaded, total },
      cause,
    });
  }
  const actual = hash.digest('hex');
  if (options.sha256 !== undefined) {
    try {
      verifyHash(id, options.sha256, actual, url);
    } catch (error) {
      await rm(part, { force: true });
      throw error;
    }
  }
  await rename(part, dest);
  return actual;
}

// ---------------------------------------------------------------------------------------------------
// The directory

export interface ModelsDirOptions {
  /** The models directory. */
  root: string;
  manifest?: ModelManifest;
  /** Hub base URL for downloads (a mirror, or a local server in tests). */
  hubBaseUrl?: string;
  fetch?: typeof fetch;
}

/** The directory given by SYNOD_MODELS_DIR, else `fallback`. */
export function modelsRootFromEnv(fallback: string): string {
  const fromEnv = typeof process !== 'undefined' ? process.env['SYNOD_MODELS_DIR'] : undefined;
  return fromEnv !== undefined && fromEnv !== '' ? resolve(fromEnv) : resolve(fallback);
}

export class ModelsDir {
  readonly root: string;
  readonly manifest: ModelManifest;
  readonly hubBaseUrl: string;
  readonly #fetch: typeof fetch | undefined;

  constructor(options: ModelsDirOptions) {
    this.root = resolve(options.root);
    this.manifest = options.manifest ?? DEFAULT_MODEL_MANIFEST;
    this.hubBaseUrl = options.hubBaseUrl ?? DEFAULT_HUB_BASE_URL;
    this.#fetch = options.fetch;
  }

  /** Model ids this directory knows (whether or not their files are present). */
  ids(): string[] {
    return Object.keys(this.manifest).sort();
  }

  entry(id: string): ModelManifestEntry {
    const entry = Object.hasOwn(this.manifest, id) ? this.manifest[id] : undefined;
    if (entry === undefined) {
      throw new InferenceError('MODEL_NOT_FOUND', `model ${id} is not in the models manifest`, {
        details: { id, known: this.ids() },
        hint: 'add it to the manifest passed to ModelsDir',
      });
    }
    return entry;
  }

  /** Absolute path of a model's file or folder (which may not exist yet). */
  pathOf(id: string): string {
    const entry = this.entry(id);
    const abs = resolve(this.root, entry.path);
    if (isAbsolute(entry.path) || !abs.startsWith(this.root + sep)) {
      throw new InferenceError(
        'INFERENCE_INVALID_INPUT',
        `manifest path for ${id} leaves the models directory`,
        {
          details: { id, path: entry.path },
        },
      );
    }
    return abs;
  }

  /**
   * Where to get a model's files, for a person setting a box up: the hub URL of each file
   * (`hubFileUrl`, under `hubBaseUrl`) and where it goes, with the sha256 to check; without a hub
   * source, the file or folder to copy into the directory. The hint of MODEL_NOT_FOUND and
   * MODEL_HASH_MISMATCH. Reaches no network.
   */
  sourceHint(id: string): string {
    const entry = this.entry(id);
    const path = this.pathOf(id);
    const sha = entry.sha256 === undefined ? '' : ` (sha256 ${entry.sha256})`;
    const hub = entry.hub;
    if (hub === undefined) return `copy ${entry.path}${sha} into ${this.root}`;
    if (entry.kind === 'file') {
      const url = hubFileUrl(hub, hub.files[0] ?? entry.path, this.hubBaseUrl);
      return `download ${url} to ${path}${sha}: curl -fL --create-dirs -o ${path} ${url} && sha256sum ${path}`;
    }
    const files = hub.files.map((file) => {
      const inside =
        hub.stripPrefix && file.startsWith(hub.stripPrefix) ? file.slice(hub.stripPrefix.length) : file;
      return `${hubFileUrl(hub, file, this.hubBaseUrl)} to ${join(path, inside)}`;
    });
    return `download ${files.join(', ')}${entry.sha256 === undefined ? '' : ` (folder hash ${entry.sha256}: sha256sum of its files sorted by path, hashed)`}`;
  }

  /** Whether the model's files are on disk. */
  async has(id: string): Promise<boolean> {
    const entry = this.entry(id);
    try {
      const info = await stat(this.pathOf(id));
      return entry.kind === 'file' ? info.isFile() : info.isDirectory();
    } catch {
      return false;
    }
  }

  /**
   * Resolve a model to its files and hash. MODEL_NOT_FOUND when unknown or absent;
   * MODEL_HASH_MISMATCH when the manifest (or `expectedHash`) pins a different hash.
   */
  async resolve(id: string, options: { expectedHash?: string; onProgress?: OnLoadProgress } = {}) {
    const entry = this.entry(id);
    const path = this.pathOf(id);
    if (!(await this.has(id))) {
      throw new InferenceError('MODEL_NOT_FOUND', `model ${id} is not in ${this.root}`, {
        details: { id, path, kind: entry.kind },
        hint: this.sourceHint(id),
      });
    }
    const fileHash =
      entry.kind === 'file'
        ? await sha256File(path, options.onProgress)
        : (await sha256Folder(path, undefined, options.onProgress)).fileHash;
    if (entry.sha256 !== undefined) {
      try {
        verifyHash(id, entry.sha256, fileHash, path);
      } catch (e) {
        // Not the manifest's bytes: where the right ones are got from, beside what went wrong.
        if (!(e instanceof InferenceError) || e.hint === undefined) throw e;
        throw new InferenceError(e.code, e.message, {
          details: e.details,
          hint: `${e.hint}; ${this.sourceHint(id)}`,
        });
      }
    }
    if (options.expectedHash !== undefined) verifyHash(id, options.expectedHash, fileHash, path);
    const resolved: ResolvedModel = { id, kind: entry.kind, format: entry.format, path, fileHash };
    return resolved;
  }

  /**
   * Resolve a model, downloading it from the hub first when it is absent. Every file is checked while it
   * streams (a file model against the manifest's sha256); the folder manifest hash is checked after.
   */
  async ensure(id: string, options: { onProgress?: OnLoadProgress; signal?: AbortSignal } = {}) {
    if (await this.has(id)) return this.resolve(id, options);
    const entry = this.entry(id);
    if (entry.hub === undefined) {
      throw new InferenceError('MODEL_NOT_FOUND', `model ${id} is absent and has no download source`, {
        details: { id, path: this.pathOf(id) },
      });
    }
    const path = this.pathOf(id);
    const hub = entry.hub;
    if (entry.kind === 'file') {
      const [file] = hub.files;
      if (file === undefined || hub.files.length !== 1) {
        throw new InferenceError(
          'INFERENCE_INVALID_INPUT',
          `file model ${id} must list exactly one hub file`,
        );
      }
      await downloadFile({
        url: hubFileUrl(hub, file, this.hubBaseUrl),
        dest: path,
        id,
        ...(entry.sha256 === undefined ? {} : { sha256: entry.sha256 }),
        ...(options.onProgress === undefined ? {} : { onProgress: options.onProgress }),
        ...(options.signal === undefined ? {} : { signal: options.signal }),
        ...(this.#fetch === undefined ? {} : { fetch: this.#fetch }),
      });
    } else {
      const staging = `${path}.part`;
      await rm(staging, { recursive: true, force: true });
      try {
        for (const file of hub.files) {
          const rel =
            hub.stripPrefix && file.startsWith(hub.stripPrefix) ? file.slice(hub.stripPrefix.length) : file;
          await downloadFile({
            url: hubFileUrl(hub, file, this.hubBaseUrl),
            dest: join(staging, rel),
            id,
            ...(options.onProgress === undefined ? {} : { onProgress: options.onProgress }),
            ...(options.signal === undefined ? {} : { signal: options.signal }),
            ...(this.#fetch === undefined ? {} : { fetch: this.#fetch }),
          });
        }
        const { fileHash } = await sha256Folder(staging);
        if (entry.sha256 !== undefined) verifyHash(id, entry.sha256, fileHash, staging);
      } catch (error) {
        await rm(staging, { recursive: true, force: true });
        throw error;
      }
      await rename(staging, path);
    }
    return this.resolve(id, options);
  }
}
