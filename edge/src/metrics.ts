/**
 * A small Prometheus registry (text exposition format 0.0.4) with no runtime dependencies, so the same
 * code serves /metrics under Bun and on workerd. Counters and gauges with labels; histograms with fixed
 * cumulative buckets, `_sum` and `_count`.
 *
 * Counting runs on every HTTP request, so each label set's text form is made once (`rawKey` finds it)
 * and a histogram keeps one array of bucket counts per label set.
 */
type Labels = Record<string, string>;

interface Histogram {
  /** Per bucket, then +Inf. */
  counts: number[];
  sum: number;
}

interface Series {
  help: string;
  type: 'counter' | 'gauge' | 'histogram';
  /** Counter and gauge values by label set (exposition form). */
  values: Map<string, number>;
  /** Histogram samples by label set (exposition form). */
  histograms: Map<string, Histogram>;
  buckets: readonly number[];
  /** Label sets seen, by their raw form (`rawKey`), with their exposition form (`keyOf`). */
  keys: Map<string, string>;
}

const escapeLabel = (v: string) => v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
/** HELP text escapes backslashes and line breaks (not quotes), as the text format has it. */
const escapeHelp = (v: string) => v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
const keyOf = (labels: Labels) =>
  Object.keys(labels)
    .sort()
    .map((k) => `${k}="${escapeLabel(labels[k] as string)}"`)
    .join(',');

/**
 * Names and values in the order given, joined with control characters: cheap, and one per label set.
 * Label values here are the relay's own (route patterns, methods, statuses, caller kinds), never raw input.
 */
function rawKey(labels: Labels): string {
  let raw = '';
  for (const k in labels) raw += `${k}\u0000${labels[k]}\u0001`;
  return raw;
}

export class Metrics {
  readonly #series = new Map<string, Series>();
  readonly #scrapers: (() => void)[] = [];

  /**
   * Run `collect` at each `render`, before the text is made: a component whose counters live elsewhere
   * (the relay's node, its intake) copies them in there (`setTotal`, `set`). One that throws does not
   * fail the scrape: its series keep their last values.
   */
  onScrape(collect: () => void): void {
    this.#scrapers.push(collect);
  }

  #get(name: string, type: Series['type'], help: string, buckets: readonly number[] = []): Series {
    let s = this.#series.get(name);
    if (!s) {
      s = { help, type, values: new Map(), histograms: new Map(), buckets, keys: new Map() };
      this.#series.set(name, s);
    }
    return s;
  }

  /** The exposition form of a label set, computed once per set. */
  #key(s: Series, labels: Labels): string {
    const raw = rawKey(labels);
    let k = s.keys.get(raw);
    if (k === undefined) {
      k = keyOf(labels);
      s.keys.set(raw, k);
    }
    return k;
  }

  inc(name: string, help: string, labels: Labels = {}, by = 1): void {
    const s = this.#get(name, 'counter', help);
    const k = this.#key(s, labels);
    s.values.set(k, (s.values.get(k) ?? 0) + by);
  }

  /**
   * A counter whose running total another component keeps (copied in at scrape time); it must only
   * grow, as a counter does, or restart from zero with the component.
   */
  setTotal(name: string, help: string, value: number, labels: Labels = {}): void {
    const s = this.#get(name, 'counter', help);
    s.values.set(this.#key(s, labels), value);
  }

  set(name: string, help: string, value: number, labels: Labels = {}): void {
    const s = this.#get(name, 'gauge', help);
    s.values.set(this.#key(s, labels), value);
  }

  observe(name: string, help: string, value: number, buckets: readonly number[], labels: Labels = {}): void {
    const s = this.#get(name, 'histogram', help, buckets);
    record(histogramOf(s, this.#key(s, labels)), s.buckets, value);
  }

  /**
   * A counter with fixed label names, for hot paths: `inc` takes the label values in that order and
   * finds the series without building a key (one map per label). Same series as `inc(name, …)`.
   */
  counter(name: string, help: string, labelNames: readonly string[]): CounterHandle {
    const s = this.#get(name, 'counter', help);
    const keys = new LabelTree(labelNames, (k) => k);
    return {
      inc: (values, by = 1) => {
        const k = keys.get(values);
        s.values.set(k, (s.values.get(k) ?? 0) + by);
      },
    };
  }

  /** A histogram with fixed label names (see `counter`). */
  histogram(
    name: string,
    help: string,
    buckets: readonly number[],
    labelNames: readonly string[],
  ): HistogramHandle {
    const s = this.#get(name, 'histogram', help, buckets);
    const histograms = new LabelTree(labelNames, (k) => histogramOf(s, k));
    return { observe: (values, value) => record(histograms.get(values), s.buckets, value) };
  }

  render(): string {
    for (const collect of this.#scrapers) {
      try {
        collect();
      } catch {
        // Its series keep their last values; the rest of the scrape is served.
      }
    }
    const lines: string[] = [];
    for (const [name, s] of this.#series) {
      lines.push(`# HELP ${name} ${escapeHelp(s.help)}`, `# TYPE ${name} ${s.type}`);
      for (const [k, v] of s.values) lines.push(`${name}${wrap(k)} ${v}`);
      for (const [k, h] of s.histograms) {
        const sep = k ? ',' : '';
        const les = [...s.buckets.map(String), '+Inf'];
        les.forEach((le, i) => {
          lines.push(`${name}_bucket{${k}${sep}le="${le}"} ${h.counts[i]}`);
        });
        lines.push(`${name}_sum${wrap(k)} ${h.sum}`, `${name}_count${wrap(k)} ${h.counts[s.buckets.length]}`);
      }
    }
    return `${lines.join('\n')}\n`;
  }
}

export interface CounterHandle {
  /** Label values in the order of the handle's label names. */
  inc(values: readonly string[], by?: number): void;
}

export interface HistogramHandle {
  observe(values: readonly string[], value: number): void;
}

function histogramOf(s: Series, key: string): Histogram {
  let h = s.histograms.get(key);
  if (h === undefined) {
    h = { counts: new Array<number>(s.buckets.length + 1).fill(0), sum: 0 };
    s.histograms.set(key, h);
  }
  return h;
}

function record(h: Histogram, buckets: readonly number[], value: number): void {
  for (let i = 0; i < buckets.length; i++)
    if (value <= (buckets[i] as number)) h.counts[i] = (h.counts[i] as number) + 1;
  h.counts[buckets.length] = (h.counts[buckets.length] as number) + 1;
  h.sum += value;
}

/** What a handle keeps per label set, found by walking one map per label value. */
class LabelTree<T> {
  readonly #root = new Map<string, unknown>();
  #none: T | undefined;

  constructor(
    private readonly names: readonly string[],
    private readonly make: (expositionKey: string) => T,
  ) {}

  get(values: readonly string[]): T {
    const n = this.names.length;
    if (values.length !== n) throw new RangeError(`expected ${n} label values, got ${values.length}`);
    if (n === 0) {
      this.#none ??= this.make('');
      return this.#none;
    }
    let node = this.#root;
    for (let i = 0; i < n - 1; i++) {
      const v = values[i] as string;
      let next = node.get(v) as Map<string, unknown> | undefined;
      if (next === undefined) {
        next = new Map();
        node.set(v, next);
      }
      node = next;
    }
    const v = values[n - 1] as string;
    let leaf = node.get(v) as T | undefined;
    if (leaf === undefined) {
      const labels: Labels = {};
      this.names.forEach((name, i) => {
        labels[name] = values[i] as string;
      });
      leaf = this.make(keyOf(labels));
      node.set(v, leaf);
    }
    return leaf;
  }
}

function wrap(k: string): string {
  return k ? `{${k}}` : '';
}
