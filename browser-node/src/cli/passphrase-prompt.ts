/**
 * The person at the terminal pressed Ctrl-C (`interrupted`: a stop, as a SIGINT would be) or closed the
 * input (Ctrl-D) while asked for the passphrase.
 */
export class PassphrasePromptAborted extends Error {
  readonly code = 'PASSPHRASE_NOT_GIVEN';
  constructor(readonly interrupted: boolean) {
    super(interrupted ? 'interrupted (Ctrl-C) at the passphrase prompt' : 'no passphrase was given');
    this.name = 'PassphrasePromptAborted';
  }
}

/** Enter pressed with nothing typed. */
export class PassphraseEmpty extends Error {
  readonly code = 'PASSPHRASE_EMPTY';
  constructor() {
    super('the passphrase must not be empty');
    this.name = 'PassphraseEmpty';
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
 * end of input rejects with PassphrasePromptAborted, and nothing typed with PassphraseEmpty. For a key
 * not created yet, `confirm` asks twice and rejects with PassphraseMismatch when the two differ;
 * `check` may refuse the first (a new key's too short passphrase) before it is asked again.
 */
export async function promptPassphrase(o: {
  prompt: string;
  confirm: boolean;
  check?: (passphrase: string) => void;
}): Promise<string> {
  const first = await readHidden(o.prompt);
  if (first === '') throw new PassphraseEmpty();
  if (!o.confirm) return first;
  o.check?.(first);
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
    const onEnd = () => done(new PassphrasePromptAborted(false));
    const onData = (chunk: Buffer | string) => {
      for (const ch of chunk.toString()) {
        if (ch === '\r' || ch === '\n') return done(null);
        if (ch === '\u0003') return done(new PassphrasePromptAborted(true)); // Ctrl-C
        if (ch === '\u0004') return done(new PassphrasePromptAborted(false)); // Ctrl-D
        if (ch === '\u007f' || ch === '\b') text = [...text].slice(0, -1).join('');
        else text += ch;
      }
    };
    stdin.on('data', onData);
    stdin.on('end', onEnd);
  });
}
