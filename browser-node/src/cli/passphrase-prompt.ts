/** The person at the terminal pressed Ctrl-C (or closed the input) while asked for the passphrase. */
export class PassphrasePromptAborted extends Error {
  readonly code = 'PASSPHRASE_NOT_GIVEN';
  constructor() {
    super('no passphrase was given');
    this.name = 'PassphrasePromptAborted';
  }
}

/** The two passphrases typed for a new key differ. */
export class PassphraseMismatch extends Error {
  readonly code = 'PASSPHRASE_MISMATCH';
  constructor() {
    super('the two passphrases typed differ: no key was created');
    this.name = 'PassphraseMismatch';
  }
}

/**
 * Ask for a passphrase on the terminal (stdin a TTY), without echoing it: the prompt goes to stderr,
 * since stdout is the node's JSON log. Enter ends it, Backspace takes a character back, Ctrl-C or the
 * end of input rejects with PassphrasePromptAborted. For a key not created yet, `confirm` asks twice and
 * rejects with PassphraseMismatch when the two differ.
 */
export async function promptPassphrase(o: { prompt: string; confirm: boolean }): Promise<string> {
  const first = await readHidden(o.prompt);
  if (!o.confirm) return first;
  const again = await readHidden('Type it again: ');
  if (again !== first) throw new PassphraseMismatch();
  return first;
}

function readHidden(prompt: string): Promise<string> {
  const stdin = process.stdin;
  process.stderr.write(prompt);
  stdin.setRawMode(true);
  stdin.resume();
  return new Promise<string>((resolve, reject) => {
    let text = '';
    const done = (error: Error | null) => {
      stdin.off('data', onData);
      stdin.off('end', onEnd);
      stdin.setRawMode(false);
      stdin.pause();
      process.stderr.write('\n');
      if (error) reject(error);
      else resolve(text);
    };
    const onEnd = () => done(new PassphrasePromptAborted());
    const onData = (chunk: Buffer | string) => {
      for (const ch of chunk.toString()) {
        if (ch === '\r' || ch === '\n') return done(null);
        // Ctrl-C, Ctrl-D
        if (ch === '\u0003' || ch === '\u0004') return done(new PassphrasePromptAborted());
        if (ch === '\u007f' || ch === '\b') text = [...text].slice(0, -1).join('');
        else text += ch;
      }
    };
    stdin.on('data', onData);
    stdin.on('end', onEnd);
  });
}
