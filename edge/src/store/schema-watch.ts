import type { Client } from '@libsql/client';
import { type EmbeddedMigration, newerMigrations } from './migrate.ts';

/** How often a running relay looks whether a newer relay migrated its database. */
export const SCHEMA_CHECK_EVERY_MS = 60_000;

/** Where the database stands against this relay's code: `newer` migrations past `schema`, its last. */
export interface SchemaState {
  newer: number;
  schema: string | null;
}

/**
 * Whether a newer relay migrated the database under this running one (a rolling upgrade over a shared
 * database): read at the start (`openHistory`), then every `everyMs` (`newerMigrations`: one read, nothing
 * written). The first time the database is found newer than this code, `DB_SCHEMA_NEWER` is logged, once
 * for the life of the relay; `/healthz` (a warning, not a 503: the relay runs on) and `/metrics` read
 * `state()`. A read that fails (the database out of reach) leaves the last state as it was: the store's
 * own health says that.
 */
export class SchemaWatch {
  readonly #client: Pick<Client, 'execute'>;
  readonly #migrations: readonly EmbeddedMigration[];
  readonly #log: (entry: Record<string, unknown>) => void;
  readonly #everyMs: number;
  #newer = 0;
  #said = false;
  #checking: Promise<void> | null = null;
  #timer: ReturnType<typeof setInterval> | undefined;

  constructor(o: {
    client: Pick<Client, 'execute'>;
    migrations: readonly EmbeddedMigration[];
    log: (entry: Record<string, unknown>) => void;
    everyMs?: number;
  }) {
    this.#client = o.client;
    this.#migrations = o.migrations;
    this.#log = o.log;
    this.#everyMs = o.everyMs ?? SCHEMA_CHECK_EVERY_MS;
  }

  /** The newer migrations found, logged the first time there are any. */
  found(newer: number): void {
    this.#newer = newer;
    if (newer === 0 || this.#said) return;
    this.#said = true;
    this.#log({
      level: 'warn',
      msg: 'the database has migrations newer than this relay: a newer synod-relay migrated it; upgrade this relay',
      code: 'DB_SCHEMA_NEWER',
      newer,
      schema: this.state().schema,
    });
  }

  /** Look now (a look under way is waited for, not doubled). */
  check(): Promise<void> {
    this.#checking ??= newerMigrations(this.#client, this.#migrations)
      .then(
        (newer) => this.found(newer),
        () => undefined,
      )
      .finally(() => {
        this.#checking = null;
      });
    return this.#checking;
  }

  /** Look every `everyMs` from now on (the timer does not hold the process open). */
  start(): void {
    if (this.#timer !== undefined) return;
    this.#timer = setInterval(() => void this.check(), this.#everyMs);
    (this.#timer as { unref?: () => void }).unref?.();
  }

  /** Stop looking; a look under way ends first. */
  async stop(): Promise<void> {
    clearInterval(this.#timer);
    this.#timer = undefined;
    await this.#checking;
  }

  state(): SchemaState {
    return { newer: this.#newer, schema: this.#migrations.at(-1)?.tag ?? null };
  }
}
