/**
 * Command-line helpers the node's and the relay's CLIs share (`@synod/browser-node/cli-args`: small, no
 * dependency, so a CLI can use them before it loads anything else).
 */

/** `got "…"` for a message: the value as typed, quoted, cut short and with control characters escaped. */
export function got(text: string): string {
  const shown = text.length > 80 ? `${text.slice(0, 80)}…` : text;
  return `got ${JSON.stringify(shown)}`;
}

/**
 * The arguments with a negative number joined to the numeric flag before it (`--tcp-port -1` as
 * `--tcp-port=-1`): parseArgs would refuse it in three lines ("argument is ambiguous…"), and the flag's
 * own check refuses it in one. Only the flags in `numeric` are joined: a text flag followed by `-1`
 * (`--identity -1`, its value forgotten before an option written `-1`) is left to parseArgs, whose error
 * `forgottenValueMessage` turns into one line, rather than naming a file `-1`.
 */
export function joinNegativeNumbers(argv: readonly string[], numeric: ReadonlySet<string>): string[] {
  const joined: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? '';
    const next = argv[i + 1];
    if (
      numeric.has(arg.replace(/^--/, '')) &&
      arg.startsWith('--') &&
      next !== undefined &&
      /^-\d/.test(next)
    ) {
      joined.push(`${arg}=${next}`);
      i++;
    } else {
      joined.push(arg);
    }
  }
  return joined;
}

/**
 * For parseArgs' error about a flag followed by a dash (`--identity --quiet`: its value forgotten), three
 * lines, one line naming the flag; null for any other error (shown as it is).
 */
export function forgottenValueMessage(e: unknown, argv: readonly string[]): string | null {
  if ((e as { code?: unknown } | null)?.code !== 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE') return null;
  const flag = /^Option '(--[^']+)' argument is ambiguous/.exec((e as Error).message)?.[1];
  const at =
    flag === undefined ? -1 : argv.findIndex((arg, i) => arg === flag && argv[i + 1]?.startsWith('-'));
  if (at < 0) return null;
  return `${flag} needs a value, ${got(argv[at + 1] ?? '')} (a value starting with a dash is written ${flag}=-…)`;
}
