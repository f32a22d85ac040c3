/**
 * The methods an app serves a path with, from its route table (`app.routes`): what a 405
 * METHOD_NOT_ALLOWED names in its `Allow` header when a known path is asked with another method.
 * Middleware (`ALL`) does not count; a GET route serves HEAD too.
 */
export function allowedMethods(
  routes: readonly { method: string; path: string }[],
): (path: string) => string[] {
  const table: { pattern: RegExp; methods: Set<string> }[] = [];
  for (const r of routes) {
    if (r.method === 'ALL' || r.path.includes('*')) continue;
    const source = `^${r.path
      .split('/')
      .map((part) => (part.startsWith(':') ? '[^/]+' : part.replace(/[.+?^${}()|[\]\\]/g, '\\$&')))
      .join('/')}$`;
    let entry = table.find((e) => e.pattern.source === source);
    if (entry === undefined) {
      entry = { pattern: new RegExp(source), methods: new Set() };
      table.push(entry);
    }
    entry.methods.add(r.method);
    if (r.method === 'GET') entry.methods.add('HEAD');
  }
  return (path) => {
    const methods = new Set<string>();
    for (const e of table) if (e.pattern.test(path)) for (const m of e.methods) methods.add(m);
    return [...methods].sort();
  };
}
