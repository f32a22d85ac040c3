/**
 * A small Prometheus registry (text exposition format 0.0.4) with no runtime dependencies, so the same
 * code serves /metrics under Bun and on workerd. Counters and gauges with labels; histograms as
 * summaries of fixed buckets.
 */
type Labels = Record<string, string>;

interface Series {
  help: string;
  type: 'counter' | 'gauge' | 'histogram';
  values: Map<string, number>;
  buckets?: readonly number[];
  /** Label sets seen, by their raw form (`rawKey`), with their exposition form (`keyOf`). */
  keys: Map<string, string>;
  /** A histogram's per-bucket sample keys, by label set. */
  bucketKeys: Map<string, readonly string[]>;
}

const escapeLabel = (v: string) => v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
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

  #get(name: string, type: Series['type'], help: string, buckets?: readonly number[]): Series {
    let s = this.#series.get(name);
    if (!s) {
      s = {
        help,
        type,
        values: new Map(),
        keys: new Map(),
        bucketKeys: new Map(),
        ...(buckets ? { buckets } : {}),
      };
      this.#series.set(name, s);
    }
    return s;
  }

  /** The exposition form of a label set, computed once per set (this runs on every HTTP request). */
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

  set(name: string, help: string, value: number, labels: Labels = {}): void {
    const s = this.#get(name, 'gauge', help);
    s.values.set(this.#key(s, labels), value);
  }

  observe(name: string, help: string, value: number, buckets: readonly number[], labels: Labels = {}): void {
    const s = this.#get(name, 'histogram', help, buckets);
    const base = this.#key(s, labels);
    let keys = s.bucketKeys.get(base);
    if (keys === undefined) {
      const sep = base ? ',' : '';
      // One key per bucket, then +Inf, sum and count.
      keys = [
        ...buckets.map((b) => `${base}${sep}le="${b}"`),
        `${base}${sep}le="+Inf"`,
        `__sum|${base}`,
        `__count|${base}`,
      ];
      s.bucketKeys.set(base, keys);
      for (const k of keys) s.values.set(k, 0);
    }
    buckets.forEach((b, i) => {
      if (value <= b) {
        const k = keys[i] as string;
        s.values.set(k, (s.values.get(k) ?? 0) + 1);
      }
    });
    const n = buckets.length;
    for (const [i, by] of [
      [n, 1],
      [n + 1, value],
      [n + 2, 1],
    ] as const) {
      const k = keys[i] as string;
      s.values.set(k, (s.values.get(k) ?? 0) + by);
    }
  }

  render(): string {
    const lines: string[] = [];
    for (const [name, s] of this.#series) {
      lines.push(`# HELP ${name} ${s.help}`, `# TYPE ${name} ${s.type}`);
      for (const [k, v] of s.values) {
        if (s.type === 'histogram') {
          if (k.startsWith('__sum|')) lines.push(`${name}_sum${wrap(k.slice(6))} ${v}`);
          else if (k.startsWith('__count|')) lines.push(`${name}_count${wrap(k.slice(8))} ${v}`);
          else lines.push(`${name}_bucket{${k}} ${v}`);
        } else {
          lines.push(`${name}${wrap(k)} ${v}`);
        }
      }
    }
    return `${lines.join('\n')}\n`;
  }
}

function wrap(k: string): string {
  return k ? `{${k}}` : '';
}
