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

  set(name: string, help: string, value: number, labels: Labels = {}): void {
    const s = this.#get(name, 'gauge', help);
    s.values.set(this.#key(s, labels), value);
  }

  observe(name: string, help: string, value: number, buckets: readonly number[], labels: Labels = {}): void {
    const s = this.#get(name, 'histogram', help, buckets);
    const k = this.#key(s, labels);
    let h = s.histograms.get(k);
    if (h === undefined) {
      h = { counts: new Array<number>(s.buckets.length + 1).fill(0), sum: 0 };
      s.histograms.set(k, h);
    }
    const b = s.buckets;
    for (let i = 0; i < b.length; i++)
      if (value <= (b[i] as number)) h.counts[i] = (h.counts[i] as number) + 1;
    h.counts[b.length] = (h.counts[b.length] as number) + 1;
    h.sum += value;
  }

  render(): string {
    const lines: string[] = [];
    for (const [name, s] of this.#series) {
      lines.push(`# HELP ${name} ${s.help}`, `# TYPE ${name} ${s.type}`);
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

function wrap(k: string): string {
  return k ? `{${k}}` : '';
}
