/**
 * Watches the model file for a new version: a change in its folder (fs.watch, debounced) or a
 * scheduled poll. A version is the manifest's content hash, so a half-copied file is never taken:
 * its hash does not match yet, and the next event or poll tries again.
 */
import { existsSync, watch, type FSWatcher } from 'node:fs';
import { basename, dirname } from 'node:path';
import { manifestPathFor } from './manifest.js';
import { readManifest } from './scorer.js';
import type { Stage } from '../lifecycle/stage.js';

export interface ModelWatcherHooks {
  /** The version being served now. */
  currentVersion(): string;
  /**
   * Loads, checks and swaps in the model at the path: `swapped`, `refused` (it breaks the contract or
   * does not fit the running pipeline: not retried), or `incomplete` (file and manifest disagree, e.g.
   * still being copied: retried on the next event or poll).
   */
  reload(): Promise<'swapped' | 'refused' | 'incomplete'>;
  /** The manifest is gone (a candidate model removed or promoted): only watchers that care set this. */
  onMissing?(): void;
  /** reload() threw (a bug): counted by the caller; the old model keeps serving. */
  onError?(err: unknown): void;
}

export class ModelWatcher implements Stage {
  private watcher: FSWatcher | null = null;
  private timer: NodeJS.Timeout | null = null;
  private checking: Promise<void> | null = null;
  private again = false;
  /** Versions refused once are not retried until the manifest names another one. */
  private refused = new Set<string>();

  constructor(
    private readonly modelPath: string,
    private readonly hooks: ModelWatcherHooks,
    /** Config model.watch: watch the model's folder; without it only check() (the cron poll, SIGHUP) finds new versions. */
    private readonly watchFolder: boolean,
    /** The stage name (the route's model in it). */
    readonly name = 'model-watcher',
    private readonly debounceMs = 300,
  ) {}

  /** Checks once now (a file that changed while the daemon was loading counts), then watches the folder. */
  async start(): Promise<void> {
    void this.check();
    if (!this.watchFolder) return;
    const names = new Set([basename(this.modelPath), basename(manifestPathFor(this.modelPath))]);
    try {
      this.watcher = watch(dirname(this.modelPath), (_event, file) => {
        // Kubernetes volumes swap a ..data symlink: any change in the folder may be ours.
        if (file === null || names.has(String(file)) || String(file).startsWith('..')) this.schedule();
      });
      this.watcher.on('error', () => this.stopWatching());
    } catch {
      this.watcher = null; // the cron poll still finds new versions
    }
  }

  private schedule(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.check();
    }, this.debounceMs);
  }

  /** Looks at the manifest and reloads when it names a version not served and not refused before. */
  async check(): Promise<void> {
    if (this.checking !== null) {
      this.again = true;
      return this.checking;
    }
    this.checking = (async () => {
      do {
        this.again = false;
        let version: string;
        try {
          version = (await readManifest(this.modelPath)).version;
        } catch {
          if (this.hooks.onMissing && !existsSync(manifestPathFor(this.modelPath))) this.hooks.onMissing();
          continue; // missing or half-written manifest: wait for the next event or poll
        }
        if (version === this.hooks.currentVersion() || this.refused.has(version)) continue;
        try {
          if ((await this.hooks.reload()) === 'refused') this.refused.add(version);
        } catch (err) {
          this.hooks.onError?.(err);
        }
      } while (this.again);
    })().finally(() => {
      this.checking = null;
    });
    return this.checking;
  }

  private stopWatching(): void {
    this.watcher?.close();
    this.watcher = null;
  }

  async stop(): Promise<void> {
    this.stopWatching();
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }
}
