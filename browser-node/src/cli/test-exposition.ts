/**
 * For tests of /metrics (the node's and the relay's): the Prometheus text format (0.0.4) as a strict
 * scraper holds an exposition to it.
 */

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
/** A sample: name, optional `{label="value",…}` with the format's escapes only, value. */
const SAMPLE =
  /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"(?:,(?=[a-zA-Z_]))?)*\})? (\S+)$/;
const VALUE = /^(?:[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|[+-]Inf|NaN)$/;
const HISTOGRAM_SUFFIXES = ['_bucket', '_sum', '_count'] as const;

export interface Exposition {
  /** What breaks the format's rules (none: an empty list). */
  problems: string[];
  /** Each family's TYPE. */
  types: Map<string, string>;
  /** Each sample's value, by its name and label set as written. */
  samples: Map<string, number>;
}

/**
 * Each family's HELP and TYPE once, before its samples, which follow them without a break; names and
 * label sets well formed, label values escaped; values numbers (or +Inf, -Inf, NaN); no series twice;
 * counters named `_total`; a final line break.
 */
export function readExposition(text: string): Exposition {
  const problems: string[] = [];
  const types = new Map<string, string>();
  const samples = new Map<string, number>();
  const described = new Set<string>();
  const closed = new Set<string>();
  let family = '';
  const complete = text.endsWith('\n');
  if (!complete) problems.push('no final line break');
  for (const line of (complete ? text.slice(0, -1) : text).split('\n')) {
    const meta = /^# (HELP|TYPE) (\S+) (.*)$/.exec(line);
    if (meta) {
      const [, kind, name, rest] = meta as unknown as [string, string, string, string];
      if (!NAME.test(name)) problems.push(`bad name ${name}`);
      if (described.has(`${kind} ${name}`)) problems.push(`${kind} ${name} twice`);
      if (closed.has(name)) problems.push(`${kind} ${name} after its samples`);
      described.add(`${kind} ${name}`);
      if (kind === 'TYPE') {
        types.set(name, rest);
        if (rest === 'counter' && !name.endsWith('_total')) problems.push(`counter ${name} not named _total`);
      }
      if (family !== name) closed.add(family);
      family = name;
      continue;
    }
    const sample = SAMPLE.exec(line);
    if (!sample) {
      problems.push(`not a sample: ${JSON.stringify(line)}`);
      continue;
    }
    const [, name, labels = '', value] = sample as unknown as [string, string, string | undefined, string];
    const own =
      name === family ||
      (types.get(family) === 'histogram' && HISTOGRAM_SUFFIXES.some((s) => name === family + s));
    if (!own) problems.push(`${name} outside its family's block`);
    if (!VALUE.test(value)) problems.push(`${name}${labels}: value ${value}`);
    if (samples.has(name + labels)) problems.push(`${name}${labels} twice`);
    samples.set(name + labels, Number(value.replace('Inf', 'Infinity')));
  }
  return { problems, types, samples };
}

/** The series of counters (and histograms, which only grow) in `before` that are lower, or gone, in `after`. */
export function countersGoneDown(before: Exposition, after: Exposition): string[] {
  const down: string[] = [];
  for (const [series, v] of before.samples) {
    const name = series.replace(/\{.*$/, '');
    const bases = HISTOGRAM_SUFFIXES.filter((s) => name.endsWith(s)).map((s) => name.slice(0, -s.length));
    const family = [name, ...bases].find(
      (f) => before.types.get(f) === 'counter' || before.types.get(f) === 'histogram',
    );
    if (family === undefined) continue;
    const w = after.samples.get(series);
    if (w === undefined || w < v) down.push(`${series}: ${v} -> ${w}`);
  }
  return down;
}
