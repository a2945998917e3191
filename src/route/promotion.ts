/**
 * Promotion and rollback of a route's model, as file moves the running daemon follows: promote moves
 * the candidate (scoring in shadow) into the model's place and keeps the model it replaces as
 * `.previous`; rollback moves `.previous` back. The daemon's watcher swaps the new file in between two
 * batches (zero downtime, no window scored twice or dropped), and a restart serves the same model.
 * The ONNX file moves before its manifest: until both are in place the manifest's hash does not match
 * and the watcher waits, so a half-done move is never served.
 */
import { copyFileSync, existsSync, readFileSync, renameSync, unlinkSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { manifestPathFor } from '../model/manifest.js';
import { readManifest } from '../model/scorer.js';
import { candidatePathFor, previousPathFor } from './route.js';

export interface MoveResult {
  /** The version now in the model's place. */
  version: string;
  /** The version it replaced (kept for rollback), or null. */
  replaced: string | null;
}

/** Throws unless the model file's hash is the version its manifest names (a complete, consistent pair). */
async function checkedVersion(modelPath: string, what: string): Promise<string> {
  if (!existsSync(modelPath) || !existsSync(manifestPathFor(modelPath))) {
    throw new Error(`no ${what} at ${modelPath} (and ${manifestPathFor(modelPath)})`);
  }
  const manifest = await readManifest(modelPath);
  const digest = `sha256:${createHash('sha256').update(readFileSync(modelPath)).digest('hex')}`;
  if (digest !== manifest.version) throw new Error(`${what} ${modelPath} does not match its manifest (hash ${digest}, manifest ${manifest.version}): still being copied?`);
  return manifest.version;
}

/** Copies a model pair through temporary files and renames (each file appears whole). */
function copyPair(from: string, to: string): void {
  for (const [a, b] of [[from, to], [manifestPathFor(from), manifestPathFor(to)]] as const) {
    copyFileSync(a, `${b}.tmp`);
    renameSync(`${b}.tmp`, b);
  }
}

/** Moves a model pair into `to`: the ONNX file first, then the manifest. */
function movePair(from: string, to: string): void {
  renameSync(from, to);
  renameSync(manifestPathFor(from), manifestPathFor(to));
}

/** Makes the candidate the model; the model it replaces becomes `.previous`. */
export async function promote(modelPath: string): Promise<MoveResult> {
  const candidate = candidatePathFor(modelPath);
  const version = await checkedVersion(candidate, 'candidate model');
  let replaced: string | null = null;
  if (existsSync(modelPath)) {
    replaced = await checkedVersion(modelPath, 'model');
    if (replaced === version) throw new Error(`the candidate is already the model (${version})`);
    copyPair(modelPath, previousPathFor(modelPath));
  }
  movePair(candidate, modelPath);
  return { version, replaced };
}

/** Puts `.previous` back in the model's place (the model it replaces is not kept). */
export async function rollback(modelPath: string): Promise<MoveResult> {
  const previous = previousPathFor(modelPath);
  const version = await checkedVersion(previous, 'previous model');
  const replaced = existsSync(modelPath) ? (await readManifest(modelPath)).version : null;
  movePair(previous, modelPath);
  return { version, replaced };
}

/** Removes the candidate (shadow scoring stops at the daemon's next check). */
export function dropCandidate(modelPath: string): boolean {
  const candidate = candidatePathFor(modelPath);
  let removed = false;
  for (const path of [manifestPathFor(candidate), candidate]) {
    if (existsSync(path)) {
      unlinkSync(path);
      removed = true;
    }
  }
  return removed;
}
