/** Writes an ONNX model and its manifest so that neither is ever left half-written. */
import { renameSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { manifestPathFor, type Manifest } from '../../model/manifest.js';

/** Both files go to temp names first and are renamed into place only once both are complete. */
export function writeModelFiles(modelPath: string, onnx: Uint8Array, manifest: Manifest): { modelPath: string; manifestPath: string } {
  const manifestPath = manifestPathFor(modelPath);
  mkdirSync(dirname(modelPath), { recursive: true });
  const suffix = `.tmp-${process.pid}`;
  const temps = [modelPath + suffix, manifestPath + suffix];
  try {
    writeFileSync(temps[0]!, onnx);
    writeFileSync(temps[1]!, JSON.stringify(manifest, null, 2) + '\n');
    renameSync(temps[0]!, modelPath);
    renameSync(temps[1]!, manifestPath);
  } catch (err) {
    for (const t of temps) rmSync(t, { force: true });
    throw err;
  }
  return { modelPath, manifestPath };
}
