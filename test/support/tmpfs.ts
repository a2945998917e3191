/**
 * A real, tiny tmpfs for tests that need a full disk (ENOSPC from the kernel, not a mock). Needs root,
 * as the test containers run; `dispose()` unmounts it even while files are still open (lazy unmount).
 */
import { execFileSync } from 'node:child_process';
import { appendFileSync, closeSync, mkdtempSync, openSync, rmSync, rmdirSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const PAGE = 4096;

export interface Tmpfs {
  dir: string;
  /** Fills every free byte with a filler file: from now on any write that needs a new page fails with ENOSPC. */
  fill(): void;
  /** Uses up every free inode (on a mount made with `inodes`): no file or directory can be created. */
  fillInodes(): void;
  /** Deletes the fillers: the space (and the inodes) are back. */
  free(): void;
  /** Pads a file with empty lines to its page boundary, so appending to it needs a new page (journals skip empty lines). */
  padToPage(path: string): void;
  dispose(): void;
}

export function mountTmpfs(sizeKiB = 64, inodes?: number): Tmpfs {
  const dir = mkdtempSync(join(tmpdir(), 'sentinel-tmpfs-'));
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${sizeKiB}k${inodes === undefined ? '' : `,nr_inodes=${inodes}`}`, 'tmpfs', dir]);
  const filler = join(dir, 'filler');
  const inodeFillers: string[] = [];
  let mounted = true;
  return {
    dir,
    fill() {
      const fd = openSync(filler, 'a');
      const chunk = Buffer.alloc(PAGE);
      try {
        for (;;) writeSync(fd, chunk);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
      } finally {
        closeSync(fd);
      }
    },
    fillInodes() {
      for (let i = 0; ; i++) {
        const path = join(dir, `inode-filler-${i}`);
        try {
          writeFileSync(path, '');
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
          return;
        }
        inodeFillers.push(path);
      }
    },
    free() {
      rmSync(filler, { force: true });
      for (const path of inodeFillers.splice(0)) rmSync(path, { force: true });
    },
    padToPage(path) {
      const rest = statSync(path).size % PAGE;
      if (rest > 0) appendFileSync(path, '\n'.repeat(PAGE - rest));
    },
    dispose() {
      if (!mounted) return;
      mounted = false;
      try {
        execFileSync('umount', [dir]);
      } catch {
        execFileSync('umount', ['-l', dir]);
      }
      rmdirSync(dir);
    },
  };
}
