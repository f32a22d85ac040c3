/**
 * A checker of answers against the relay's OpenAPI document, for tests: the route, its status, content
 * type, declared headers and JSON body (ajv, with every object schema closed to members it does not
 * name). Used by the conformance test (answers of real relays) and the HTTP fuzzer.
 */
import Ajv2020, { type ValidateFunction } from 'ajv/dist/2020';

export type Schema = Record<string, unknown>;
interface DocResponse {
  description: string;
  headers?: Record<string, { required?: boolean; schema: Schema }>;
  content?: Record<string, { schema: Schema }>;
}
export interface Doc {
  paths: Record<string, Record<string, { responses: Record<string, DocResponse> }>>;
  components?: { schemas?: Record<string, Schema> };
}

/** An answer as a client sees it. */
export interface Answer {
  status: number;
  headers: Headers;
  text: string;
}

/** Headers of the API's own (not HTTP plumbing) that, when sent, a client must find in the document. */
const API_HEADERS = [
  'retry-after',
  'location',
  'x-request-id',
  'x-synod-quota-limit',
  'x-synod-quota-remaining',
  'x-synod-quota-reset',
  'x-should-retry',
];

/** A schema with each `#/components/schemas/…` reference replaced by the schema it names. */
function resolved(schema: unknown, doc: Doc): unknown {
  if (Array.isArray(schema)) return schema.map((s) => resolved(s, doc));
  if (schema === null || typeof schema !== 'object') return schema;
  const target = (schema as Schema)['$ref'];
  if (typeof target === 'string') {
    const named = doc.components?.schemas?.[target.replace('#/components/schemas/', '')];
    if (!named) throw new Error(`the document has no ${target}`);
    return resolved(named, doc);
  }
  return Object.fromEntries(Object.entries(schema).map(([k, v]) => [k, resolved(v, doc)]));
}

/**
 * A schema that refuses members it does not name: each object schema that lists its properties and says
 * nothing of others gets `additionalProperties: false`, so a member the relay sends but the document
 * does not declare is a mismatch too (the document itself stays open to additions).
 */
function closed(schema: unknown): unknown {
  if (Array.isArray(schema)) return schema.map(closed);
  if (schema === null || typeof schema !== 'object') return schema;
  const out: Schema = {};
  for (const [k, v] of Object.entries(schema)) {
    out[k] =
      k === 'properties'
        ? Object.fromEntries(Object.entries(v as Schema).map(([n, s]) => [n, closed(s)]))
        : closed(v);
  }
  if ('properties' in out && !('additionalProperties' in out)) out['additionalProperties'] = false;
  return out;
}

const ajv = new Ajv2020({ strict: false, allErrors: true, validateFormats: false });
const compiled = new WeakMap<Schema, ValidateFunction>();
function schemaErrors(doc: Doc, schema: Schema, value: unknown): string | null {
  let validate = compiled.get(schema);
  if (!validate) {
    validate = ajv.compile(closed(resolved(schema, doc)) as Schema);
    compiled.set(schema, validate);
  }
  if (validate(value)) return null;
  const each = (validate.errors ?? []).map((e) => {
    const extra = (e.params as { additionalProperty?: string }).additionalProperty;
    return `${e.instancePath || '/'} ${e.message}${extra === undefined ? '' : ` (${extra})`}`;
  });
  return [...new Set(each)].join('; ');
}

/**
 * Where an answer disagrees with the document: nothing when the route, its status, content type, headers
 * and JSON body are all as declared (HEAD: as GET's, without a body).
 */
export function mismatches(doc: Doc, method: string, route: string, a: Answer): string[] {
  const head = method === 'HEAD';
  const where = `${method} ${route} ${a.status}`;
  const op = doc.paths[route]?.[head ? 'get' : method.toLowerCase()];
  if (!op) return [`${method} ${route} is not documented`];
  const r = op.responses[String(a.status)] ?? op.responses[`${String(a.status)[0]}XX`];
  if (!r) return [`${where}: the status is not documented (${Object.keys(op.responses).join(', ')})`];
  const out: string[] = [];
  const type = (a.headers.get('content-type') ?? '').split(';')[0]?.trim().toLowerCase() ?? '';
  if (!r.content) {
    if (a.text !== '') out.push(`${where}: a body of ${type}, where the document declares none`);
  } else {
    const media = r.content[type];
    if (!media) out.push(`${where}: content type "${type}" not in ${Object.keys(r.content).join(', ')}`);
    else if (type === 'application/json' && !head) {
      out.push(...bodyMismatches(doc, where, media.schema, a.text));
    }
  }
  const declared = new Map(Object.entries(r.headers ?? {}).map(([k, v]) => [k.toLowerCase(), v]));
  for (const [name, h] of declared) {
    const v = a.headers.get(name);
    if (v === null) {
      if (h.required) out.push(`${where}: the required header ${name} is missing`);
      continue;
    }
    const value = h.schema['type'] === 'integer' && /^-?\d+$/.test(v) ? Number(v) : v;
    const errors = schemaErrors(doc, h.schema, value);
    if (errors) out.push(`${where}: header ${name}: ${v}: ${errors}`);
  }
  for (const name of API_HEADERS) {
    if (a.headers.has(name) && !declared.has(name)) out.push(`${where}: header ${name} is not documented`);
  }
  return out;
}

/** Where a JSON body text disagrees with `schema` (it is not JSON, or not as the schema has it). */
export function bodyMismatches(doc: Doc, where: string, schema: Schema, text: string): string[] {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    return [`${where}: not JSON: ${text.slice(0, 80)}`];
  }
  const errors = schemaErrors(doc, schema, body);
  return errors ? [`${where}: body: ${errors}`] : [];
}
