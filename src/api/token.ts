/** The API's bearer token, read from a file and read again when the file changes (rotation without a restart). */
import { createHash, timingSafeEqual } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';

/** A changed file is noticed within this long; requests in between reuse the cached token. */
const CHECK_EVERY_MS = 1_000;

export class TokenFile {
  private digest: Buffer | null = null;
  private stamp = '';
  private checkedAt = Number.NEGATIVE_INFINITY;
  private checking: Promise<void> | null = null;

  constructor(readonly path: string) {}

  /** Reads the token; throws, naming the file and a fix, when there is none to use. */
  async load(): Promise<void> {
    await this.refresh(true);
    if (this.digest === null) throw new Error(`api.tokenFile ${this.path} is empty — fix: write the token into it, or unset api.tokenFile`);
  }

  /**
   * Whether the Authorization header carries the token. Both sides are hashed first, so the
   * constant-time compare sees equal lengths and the token's length does not leak either.
   */
  async accepts(header: string | undefined): Promise<boolean> {
    if (Date.now() - this.checkedAt >= CHECK_EVERY_MS) {
      this.checking ??= this.refresh(false).finally(() => (this.checking = null));
      await this.checking;
    }
    const digest = this.digest;
    if (digest === null || header === undefined) return false;
    const match = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header);
    if (match === null) return false;
    return timingSafeEqual(digest, sha256(match[1] as string));
  }

  private async refresh(strict: boolean): Promise<void> {
    this.checkedAt = Date.now();
    try {
      const info = await stat(this.path);
      const stamp = `${info.ino}:${info.size}:${info.mtimeMs}`;
      if (stamp === this.stamp && this.digest !== null) return;
      const token = (await readFile(this.path, 'utf8')).trim();
      this.digest = token === '' ? null : sha256(token);
      this.stamp = stamp;
    } catch (err) {
      // A token file that went away locks the API (fail closed), it does not open it.
      this.digest = null;
      this.stamp = '';
      if (strict) throw new Error(`api.tokenFile ${this.path} cannot be read: ${(err as Error).message} — fix: create it (mode 0600) or unset api.tokenFile`);
    }
  }
}

function sha256(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}
