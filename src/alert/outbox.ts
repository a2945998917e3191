/**
 * The alert outbox: a bounded, append-only journal of alerts the broker has not acknowledged yet.
 * Every alert is written (and fsynced) before it is published and marked done on PUBACK, so alerts
 * decided while the broker is down, or before a crash, are replayed in order on the next start.
 */
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { alertSchema, type Alert } from './alert.js';

type JournalLine = { add: Alert } | { done: string };

export interface OutboxOpenResult {
  /** Alerts still to deliver, oldest first. */
  pending: Alert[];
  /** Lines that could not be read (a write torn by a crash), skipped. */
  skippedLines: number;
}

export class AlertOutbox {
  private readonly pending = new Map<string, Alert>();
  private fd: number | null = null;
  private lines = 0;

  constructor(
    readonly path: string,
    private readonly maxAlerts: number,
  ) {}

  get size(): number {
    return this.pending.size;
  }

  /** Reads the journal, compacts it to the pending alerts, and opens it for appending. */
  open(): OutboxOpenResult {
    let skippedLines = 0;
    try {
      mkdirSync(dirname(this.path), { recursive: true });
      if (existsSync(this.path)) {
        for (const line of readFileSync(this.path, 'utf8').split('\n')) {
          if (line.length === 0) continue;
          const entry = this.parseLine(line);
          if (entry === null) skippedLines++;
          else if ('add' in entry) this.pending.set(entry.add.eventId, entry.add);
          else this.pending.delete(entry.done);
        }
      }
      while (this.pending.size > this.maxAlerts) this.pending.delete(this.pending.keys().next().value as string);
      this.compact();
    } catch (err) {
      throw new Error(`outbox.path ${this.path}: ${(err as Error).message} — fix: point outbox.path at a writable volume`);
    }
    return { pending: [...this.pending.values()], skippedLines };
  }

  private parseLine(line: string): JournalLine | null {
    try {
      const json = JSON.parse(line) as Record<string, unknown>;
      if (typeof json.done === 'string') return { done: json.done };
      const alert = alertSchema.safeParse(json.add);
      return alert.success ? { add: alert.data } : null;
    } catch {
      return null;
    }
  }

  /** Rewrites the journal as just the pending alerts (temp file + rename, so a crash leaves one or the other). */
  private compact(): void {
    if (this.fd !== null) closeSync(this.fd);
    const temp = `${this.path}.tmp`;
    const fd = openSync(temp, 'w');
    const text = [...this.pending.values()].map((alert) => `${JSON.stringify({ add: alert })}\n`).join('');
    if (text.length > 0) writeSync(fd, text);
    fsyncSync(fd);
    closeSync(fd);
    renameSync(temp, this.path);
    this.fd = openSync(this.path, 'a');
    this.lines = this.pending.size;
  }

  private append(line: string, durable: boolean): void {
    if (this.fd === null) throw new Error('outbox is not open');
    writeSync(this.fd, line);
    if (durable) fsyncSync(this.fd);
    this.lines++;
  }

  /** Records an alert before it is published; returns the oldest alert dropped to stay within maxAlerts. */
  add(alert: Alert): Alert | null {
    this.append(`${JSON.stringify({ add: alert })}\n`, true);
    this.pending.set(alert.eventId, alert);
    if (this.pending.size <= this.maxAlerts) return null;
    const [oldestId, oldest] = this.pending.entries().next().value as [string, Alert];
    this.done(oldestId);
    return oldest;
  }

  /** Marks an alert delivered. Not fsynced: losing this line only means one redelivery after a crash. */
  done(eventId: string): void {
    if (!this.pending.delete(eventId)) return;
    this.append(`${JSON.stringify({ done: eventId })}\n`, false);
    if (this.lines > 4 * this.pending.size + 1000) this.compact();
  }

  close(): void {
    if (this.fd === null) return;
    fsyncSync(this.fd);
    closeSync(this.fd);
    this.fd = null;
  }
}
