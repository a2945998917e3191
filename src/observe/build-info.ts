/** What this build is: the package version, the source revision it was built from, and the onnxruntime-node version. */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

export interface BuildInfo {
  /** package.json's version. */
  version: string;
  /** The commit the build came from (dist/REVISION, written by the image build), or "unknown". */
  revision: string;
  /** The onnxruntime-node package version. */
  onnxruntime: string;
}

/**
 * dist/REVISION holds the commit when the build wrote one (the Dockerfile's REVISION build arg); a file,
 * not an environment variable, so the image carries it without git and SENTINEL_* stays for config.
 */
function readRevision(): string {
  try {
    const revision = readFileSync(new URL('../REVISION', import.meta.url), 'utf8').trim();
    return /^[\w.+-]{1,64}$/.test(revision) ? revision : 'unknown';
  } catch {
    return 'unknown';
  }
}

function packageVersion(path: string | URL): string {
  const { version } = JSON.parse(readFileSync(path, 'utf8')) as { version?: unknown };
  return typeof version === 'string' ? version : 'unknown';
}

let cached: BuildInfo | null = null;

export function buildInfo(): BuildInfo {
  cached ??= {
    // The same relative path from src/observe/ (tests) and dist/observe/ (the build, and /app in the image).
    version: packageVersion(new URL('../../package.json', import.meta.url)),
    revision: readRevision(),
    onnxruntime: packageVersion(createRequire(import.meta.url).resolve('onnxruntime-node/package.json')),
  };
  return cached;
}
