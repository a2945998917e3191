/**
 * The daemon as built from an earlier commit (BENCH_BASELINE_REV), to measure a change against the
 * code before it in the same run — e.g. tracing off against the build without tracing at all. The
 * commit's tree is exported with `git archive` (no worktree left behind) and compiled with this
 * checkout's node_modules; returns the path of its CLI.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, symlinkSync } from 'node:fs';
import { join, resolve } from 'node:path';

export function buildAtRevision(rev: string, dir: string, log: (line: string) => void): { cli: string; commit: string } {
  const commit = execFileSync('git', ['rev-parse', '--short', `${rev}^{commit}`], { encoding: 'utf8' }).trim();
  const root = join(dir, `baseline-${commit}`);
  mkdirSync(root, { recursive: true });
  log(`  building the daemon at ${commit} (BENCH_BASELINE_REV=${rev})…`);
  const archive = execFileSync('git', ['archive', '--format=tar', commit], { maxBuffer: 512 * 1024 * 1024 });
  execFileSync('tar', ['-x', '-C', root], { input: archive });
  symlinkSync(resolve('node_modules'), join(root, 'node_modules'), 'dir');
  execFileSync(process.execPath, [resolve('node_modules/typescript/bin/tsc'), '-p', 'tsconfig.build.json'], { cwd: root, stdio: 'inherit' });
  return { cli: join(root, 'dist/cli/main.js'), commit };
}
