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
}

const escapeLabel = (v: string) => v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
const keyOf = (labels: Labels) =>
  Object.keys(labels)
    .sort()
    .map((k) => `${k}="${escapeLabel(labels[k] as string)}"`)
    .join(',');

export class Metrics {
  readonly #series = new Map<string, Series>();

  #get(name: string, type: Series['type'], help: string, buckets?: readonly number[]): Series {
    let s = this.#series.get(name);
    if (!s) {
      s = { help, type, values: new Map(), ...(buckets ? { buckets } : {}) };
      this.#series.set(name, s);
    }
    return s;
  }

  inc(name: string, help: string, labels: Labels = {}, by = 1): void {
    const s = this.#get(name, 'counter', help);
    const k = keyOf(labels);
    s.values.set(k, (s.values.get(k) ?? 0) + by);
  }

  set(name: string, help: string, value: number, labels: Labels = {}): void {
    this.#get(name, 'gauge', help).values.set(keyOf(labels), value);
  }

  observe(name: string, help: string, value: number, buckets: readonly number[], labels: Labels = {}): void {
    const s = this.#get(name, 'histogram', help, buckets);
    const base = keyOf(labels);
    const sep = base ? ',' : '';
    for (const b of buckets) {
      if (value <= b) {
        const k = `${base}${sep}le="${b}"`;
        s.values.set(k, (s.values.get(k) ?? 0) + 1);
      } else {
        const k = `${base}${sep}le="${b}"`;
        if (!s.values.has(k)) s.values.set(k, 0);
      }
    }
    const inf = `${base}${sep}le="+Inf"`;
    s.values.set(inf, (s.values.get(inf) ?? 0) + 1);
    s.values.set(`__sum|${base}`, (s.values.get(`__sum|${base}`) ?? 0) + value);
    s.values.set(`__count|${base}`, (s.values.get(`__count|${base}`) ?? 0) + 1);
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
