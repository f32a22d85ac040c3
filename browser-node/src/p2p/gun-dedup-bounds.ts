/**
 * A bound on how many message ids a Gun 0.2020 instance keeps to drop repeats, client or relay alike,
 * beside the graph bounds (gun-bounds.ts) and the wire bounds (gun-wire-bounds.ts).
 *
 * Gun's `dup` module keeps, in one plain object (`root.dup.s`), an entry for every message id it has
 * heard or said (and one per key a put stores, one per ack it routes; a GET's entry holds the GET itself
 * to route the answer back), and forgets them once 9 s old. Nothing bounds how many it holds for those
 * 9 s: a peer sending distinct ids as fast as it can grows the object with its rate.
 *
 * The object is held in Gun's closures, so it cannot be replaced; instead its prototype becomes a proxy
 * that sees every new key written to it (an assignment to a key the object does not hold falls through
 * to the prototype's `set`). Every id Gun adds is recorded in arrival order; past `maxIds` ids, or
 * `maxIdChars` characters of ids (an id is any string a peer sends), the oldest is deleted from the
 * object at once, so the object never holds more than either. Ids Gun's own 9 s drop forgot leave the
 * record as soon as they are its oldest and another id comes; until then they count against both bounds,
 * so what the record keeps is bounded too. An id
 * evicted early only means a repeat of that message arriving later is not recognised: its put is
 * idempotent (HAM keeps the state it has), at worst relayed once more, and an ack that can no longer be
 * routed is dropped, as Gun drops any ack it lost the trail of.
 *
 * The proxy answers no lookups (`get` is undefined, `in` false), so the object also stops inheriting
 * Object.prototype: an id such as `constructor` or `__proto__` is an ordinary key, where Gun alone
 * would take it for a repeat (and, for `__proto__`, write `was` onto Object.prototype).
 */

/**
 * Most message ids a Gun instance keeps for its 9 s dedup. One GET answer can bring a full topic (4096
 * keys, `GUN_BOUNDS_DEFAULTS.maxKeys`) for each of the two default topics, one id per key, and an
 * honest node sees a few ids per packet: 32 Ki leaves room for several such answers and hundreds of
 * packets a second over the 9 s.
 */
export const MAX_GUN_DEDUP_IDS = 32_768;
/**
 * Most characters of message ids kept. Gun's own ids are 9-24 characters (soul and key ids a few dozen),
 * so 32 Ki honest ids take well under 2 Mi; a peer's ids are any length it likes, and without this a
 * flood of long ones would hold 32 Ki of them.
 */
export const MAX_GUN_DEDUP_ID_CHARS = 4 * 1024 * 1024;

export interface GunDedupBoundsOptions {
  /** Most message ids kept; the oldest is forgotten first. Default `MAX_GUN_DEDUP_IDS`. */
  maxIds?: number;
  /** Most characters of message ids kept, all of them together. Default `MAX_GUN_DEDUP_ID_CHARS`. */
  maxIdChars?: number;
}

export interface GunDedupStats {
  /** Message ids Gun's dedup holds now. */
  ids: number;
  /** Ids forgotten early to stay within `maxIds` or `maxIdChars`. */
  evicted: number;
  /** Ids in the bound's own record (those Gun holds, and any it dropped that are not yet let go). */
  recorded: number;
  /** Their characters. */
  recordedChars: number;
}

/** The Gun internals the bound touches (Gun 0.2020's root context, `gun._`). */
interface GunRootContext {
  dup?: { s?: unknown };
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null;

export class GunDedupBounds {
  readonly maxIds: number;
  readonly maxIdChars: number;
  readonly #ids: Record<string, unknown>;
  /** Every id Gun added to `#ids`, oldest first (some since dropped by Gun itself). */
  readonly #order = new Set<string>();
  /** The characters of the ids in `#order`. */
  #chars = 0;
  #evicted = 0;

  constructor(gun: { _: unknown }, options: GunDedupBoundsOptions = {}) {
    const ids = (gun._ as GunRootContext | undefined)?.dup?.s;
    if (!isObject(ids)) {
      throw new TypeError('Gun dedup bounds need a Gun 0.2020 instance (its root `_` has `dup.s`)');
    }
    const maxIds = options.maxIds ?? MAX_GUN_DEDUP_IDS;
    if (!(Number.isInteger(maxIds) && maxIds > 0)) {
      throw new RangeError('Gun dedup bounds: maxIds must be a positive integer');
    }
    const maxIdChars = options.maxIdChars ?? MAX_GUN_DEDUP_ID_CHARS;
    if (!(Number.isInteger(maxIdChars) && maxIdChars > 0)) {
      throw new RangeError('Gun dedup bounds: maxIdChars must be a positive integer');
    }
    this.maxIds = maxIds;
    this.maxIdChars = maxIdChars;
    this.#ids = ids;
    for (const id of Object.keys(ids)) this.#added(id);
    const bounds = this;
    const trap = new Proxy(Object.create(null) as object, {
      get: () => undefined,
      has: () => false,
      set(_target, key, value, receiver) {
        const own = { value, writable: true, enumerable: true, configurable: true };
        if (!Reflect.defineProperty(receiver as object, key, own)) return false;
        if (receiver === ids && typeof key === 'string') bounds.#added(key);
        return true;
      },
    });
    Object.setPrototypeOf(ids, trap);
  }

  stats(): GunDedupStats {
    return {
      ids: Object.keys(this.#ids).length,
      evicted: this.#evicted,
      recorded: this.#order.size,
      recordedChars: this.#chars,
    };
  }

  #added(id: string): void {
    if (this.#order.delete(id)) this.#chars -= id.length;
    this.#order.add(id);
    this.#chars += id.length;
    for (const oldest of this.#order) {
      const gone = !Object.hasOwn(this.#ids, oldest);
      // Ids Gun dropped itself leave the record first; past a bound, the oldest Gun still holds go too.
      if (!gone && this.#order.size <= this.maxIds && this.#chars <= this.maxIdChars) return;
      if (oldest === id) return;
      this.#order.delete(oldest);
      this.#chars -= oldest.length;
      if (gone) continue;
      delete this.#ids[oldest];
      this.#evicted++;
    }
  }
}
