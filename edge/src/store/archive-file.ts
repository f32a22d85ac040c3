/**
 * The archive `synod-relay history prune` appends to: JSON lines, each whole and flushed to disk before
 * the requests it holds are deleted. A batch is written whole or not at all: a write that fails or
 * comes up short (a full disk returns fewer bytes before it returns an error) is cut back to where the
 * batch began, and the command stops without deleting the batch. A line cut short by a crash (the batch
 * then not deleted either) is cut away when the file is opened again, so every line stays whole.
 */
import { type FileHandle, open } from 'node:fs/promises';

const NEWLINE = 0x0a;

export class ArchiveFile {
  readonly #fh: FileHandle;
  #size: number;

  private constructor(fh: FileHandle, size: number) {
    this.#fh = fh;
    this.#size = size;
  }

  /**
   * Open `path` for appending (made `0600`, created when missing: it holds prompts and answers), with any
   * line a crash left unfinished at its end cut away.
   */
  static async open(path: string): Promise<ArchiveFile> {
    const fh = await open(path, 'a+', 0o600);
    try {
      await fh.chmod(0o600);
      const size = (await fh.stat()).size;
      const whole = await lastLineEnd(fh, size);
      if (whole < size) await fh.truncate(whole);
      return new ArchiveFile(fh, whole);
    } catch (e) {
      await fh.close();
      throw e;
    }
  }

  /** Bytes in the file. */
  get size(): number {
    return this.#size;
  }

  /** Append `lines` (each without a newline), all of them, then flush them to disk. */
  async append(lines: readonly string[]): Promise<void> {
    if (lines.length === 0) return;
    const bytes = Buffer.from(`${lines.join('\n')}\n`);
    const start = this.#size;
    try {
      let done = 0;
      while (done < bytes.length) {
        const { bytesWritten } = await this.#fh.write(bytes, done, bytes.length - done);
        if (bytesWritten <= 0)
          throw new Error(`the archive took no more bytes after ${done} of ${bytes.length}`);
        done += bytesWritten;
      }
      await this.#fh.sync();
      this.#size = start + bytes.length;
    } catch (e) {
      // Whatever of the batch got in is cut away, so the file ends with a whole line again.
      await this.#fh.truncate(start).catch(() => undefined);
      throw e;
    }
  }

  close(): Promise<void> {
    return this.#fh.close();
  }
}

/** The length of `fh` up to and including its last newline (0 when it has none). */
async function lastLineEnd(fh: FileHandle, size: number): Promise<number> {
  const chunk = Buffer.alloc(64 * 1024);
  let end = size;
  while (end > 0) {
    const from = Math.max(0, end - chunk.length);
    const { bytesRead } = await fh.read(chunk, 0, end - from, from);
    const at = chunk.subarray(0, bytesRead).lastIndexOf(NEWLINE);
    if (at >= 0) return from + at + 1;
    end = from;
  }
  return 0;
}
