/**
 * The alert outbox: a bounded, append-only journal of alerts the broker has not acknowledged yet.
 * Every alert is written (and fsynced) before it is published and marked done on PUBACK, so alerts
 * decided while the broker is down, or before a crash, are replayed in order on the next start.
 *
 * A journal that cannot be written (disk full, I/O error) degrades instead of failing: the alert is
 * kept in memory and published anyway, `journalError` says why, and every later write retries; the
 * first one that succeeds rewrites the journal from memory, so nothing journaled or pending is lost.
 */
import { closeSync, fstatSync, fsyncSync, ftruncateSync, mkdirSync, openSync, readFileSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { alertSchema, type Alert } from './alert.js';

type JournalLine = { add: Alert } | { done: string };

export interface OutboxOpenResult {
  /** Alerts still to deliver, oldest first. */
  pending: Alert[];
  /** Lines that could not be read (a write torn by a crash), skipped. */
  skippedLines: number;
}

export interface OutboxAddResult {
  /** The oldest undelivered alert given up to stay within maxAlerts, or null. */
  dropped: Alert | null;
  /** Why the alert is not in the journal (it is still to be published), or null once it is fsynced. */
  error: Error | null;
}

/** Errors at open that a full or failing disk causes: the daemon starts degraded rather than not at all. */
const CAPACITY_ERRORS = new Set(['ENOSPC', 'EDQUOT', 'EIO', 'EFBIG', 'EMFILE', 'ENFILE', 'ENOMEM']);

/** Deliveries between compactions (and after a compaction that failed, before the next try). */
const COMPACT_SLACK = 1000;

const asError = (err: unknown): Error => (err instanceof Error ? err : new Error(String(err)));
const isCapacityError = (err: unknown): boolean => CAPACITY_ERRORS.has((err as NodeJS.ErrnoException).code ?? '');
const openError = (path: string, err: unknown): Error =>
  new Error(`outbox.path ${path}: ${asError(err).message} — fix: point outbox.path at a writable volume`);

export class AlertOutbox {
  private readonly pending = new Map<string, Alert>();
  private fd: number | null = null;
  /** After close(): a late acknowledgement is not journaled (at worst one redelivery next run). */
  private closed = false;
  private lines = 0;
  /** Journal length up to its last whole line: a failed write is cut back to here. */
  private bytes = 0;
  /** The journal may end in a partial line (a crash, or a failed write that could not be cut back). */
  private torn = false;
  /** Set while the journal may be missing something that is pending; cleared by a successful rewrite. */
  private failure: Error | null = null;
  private compactAt = COMPACT_SLACK;

  constructor(
    readonly path: string,
    private readonly maxAlerts: number,
  ) {}

  get size(): number {
    return this.pending.size;
  }

  /** Why the journal cannot be written now (e.g. "ENOSPC: no space left on device"), or null when it is healthy. */
  get journalError(): string | null {
    return this.failure === null ? null : this.failure.message;
  }

  /**
   * Reads the journal, compacts it to the pending alerts, and opens it for appending. Throws, naming
   * the path and a fix, when the path is unusable (not a directory, read-only, no permission); a full
   * or failing disk instead keeps the old journal (appending to it if it can) and opens degraded.
   */
  open(): OutboxOpenResult {
    this.closed = false;
    let skippedLines = 0;
    let journal: Buffer | null = null;
    try {
      journal = readFileSync(this.path);
    } catch (err) {
      // A journal that exists but cannot be read must fail the start: a compaction would overwrite it.
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw openError(this.path, err);
    }
    if (journal !== null) {
      for (const line of journal.toString('utf8').split('\n')) {
        if (line.length === 0) continue;
        const entry = this.parseLine(line);
        if (entry === null) skippedLines++;
        else if ('add' in entry) this.pending.set(entry.add.eventId, entry.add);
        else this.pending.delete(entry.done);
      }
    }
    while (this.pending.size > this.maxAlerts) this.pending.delete(this.pending.keys().next().value as string);
    // The journal as read; a successful compaction replaces this bookkeeping with its own.
    this.bytes = journal?.length ?? 0;
    this.torn = journal !== null && journal.length > 0 && journal[journal.length - 1] !== 0x0a;
    this.lines = this.pending.size + skippedLines;
    const failure = this.compact();
    if (failure !== null) {
      if (!isCapacityError(failure)) throw openError(this.path, failure);
      // The old journal still holds every pending alert: keep it, and append to it while the disk allows.
      this.failure = failure;
      if (journal !== null && this.fd === null) {
        try {
          this.fd = openSync(this.path, 'a');
        } catch {
          // memory-only: the next write retries with a full rewrite
        }
      }
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

  /**
   * Rewrites the journal as just the pending alerts (temp file + rename, so a crash leaves one or the
   * other) and reopens it for appending. Returns the error instead of throwing; the old journal and
   * its descriptor are untouched unless the rename happened.
   */
  private compact(): Error | null {
    const temp = `${this.path}.tmp`;
    const text = Buffer.from([...this.pending.values()].map((alert) => `${JSON.stringify({ add: alert })}\n`).join(''));
    let fd: number | null = null;
    try {
      mkdirSync(dirname(this.path), { recursive: true });
      fd = openSync(temp, 'w');
      writeAll(fd, text);
      fsyncSync(fd);
      closeSync(fd);
      fd = null;
      renameSync(temp, this.path);
    } catch (err) {
      if (fd !== null) closeQuietly(fd);
      // A half-written temp file holds the very space the disk is short of.
      try {
        unlinkSync(temp);
      } catch {
        // already gone, or never created
      }
      return asError(err);
    }
    if (this.fd !== null) closeQuietly(this.fd);
    this.fd = null;
    this.bytes = text.length;
    this.torn = false;
    this.lines = this.pending.size;
    this.compactAt = this.lines + COMPACT_SLACK;
    try {
      this.fd = openSync(this.path, 'a');
    } catch (err) {
      return asError(err);
    }
    return null;
  }

  /**
   * Appends whole lines. On failure the journal is cut back to its last whole line (or, when that
   * fails too, the next write starts on a fresh line), marked degraded, and the error returned. While
   * degraded, a write that succeeds is followed by a rewrite from memory, which ends the degradation.
   */
  private append(line: string, durable: boolean): Error | null {
    if (this.closed) return null;
    // Memory-only (the journal could not even be opened): only a full rewrite can bring it back.
    if (this.fd === null) return (this.failure = this.compact());
    const data = Buffer.from(this.torn ? `\n${line}` : line);
    try {
      writeAll(this.fd, data);
      if (durable) fsyncSync(this.fd);
      this.bytes = fstatSync(this.fd).size;
      this.torn = false;
      this.lines++;
    } catch (err) {
      try {
        ftruncateSync(this.fd, this.bytes);
      } catch {
        this.torn = true;
      }
      return (this.failure = asError(err));
    }
    // Degraded until now: the journal may lack pending alerts, so rewrite it from memory.
    if (this.failure !== null) this.failure = this.compact();
    return null;
  }

  /**
   * Records an alert before it is published. The journal holds only what open() reads back: an alert
   * that fails alertSchema once serialised (a non-finite score becomes null in JSON) is not journaled
   * (`error` says why) and is not kept pending, so it can never become an unreadable or poison line;
   * the publisher still publishes it once, without crash protection.
   */
  add(alert: Alert): OutboxAddResult {
    const encoded = encode(alert);
    if (encoded instanceof Error) return { dropped: null, error: encoded };
    this.pending.set(encoded.alert.eventId, encoded.alert);
    const error = this.append(encoded.line, true);
    if (this.pending.size <= this.maxAlerts) return { dropped: null, error };
    const [oldestId, oldest] = this.pending.entries().next().value as [string, Alert];
    this.done(oldestId);
    return { dropped: oldest, error };
  }

  /**
   * Marks an alert delivered; never throws. Not fsynced, and a failed write only degrades the
   * journal: losing this line means one redelivery after a crash. Returns the write error, if any.
   */
  done(eventId: string): Error | null {
    if (!this.pending.delete(eventId)) return null;
    const error = this.append(`${JSON.stringify({ done: eventId })}\n`, false);
    if (error === null && this.failure === null && this.lines > Math.max(4 * this.pending.size + COMPACT_SLACK, this.compactAt)) {
      // A routine compaction that fails leaves a longer but correct journal: try again later.
      if (this.compact() !== null) this.compactAt = this.lines + COMPACT_SLACK;
    }
    return error;
  }

  /** Flushes and closes the journal; never throws (what could not be written is still pending in memory only). */
  close(): void {
    this.closed = true;
    if (this.fd === null) return;
    try {
      fsyncSync(this.fd);
    } catch {
      // closing anyway: the done lines are not fsynced by design and every add already was
    }
    closeQuietly(this.fd);
    this.fd = null;
  }
}

/** The journal line for an alert and the alert exactly as open() will read it back, or why there is none. */
function encode(alert: Alert): { line: string; alert: Alert } | Error {
  let json: string;
  try {
    json = JSON.stringify({ add: alert });
  } catch (err) {
    return new Error(`alert cannot be serialised: ${asError(err).message}`);
  }
  const back = alertSchema.safeParse((JSON.parse(json) as { add?: unknown }).add);
  if (!back.success) {
    const issues = back.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`).join('; ');
    return new Error(`alert does not match the alert schema once serialised (${issues})`);
  }
  return { line: `${json}\n`, alert: back.data };
}

/** writeSync may write less than asked (a nearly full disk): keep going until all is written or it throws. */
function writeAll(fd: number, data: Buffer): void {
  let offset = 0;
  while (offset < data.length) offset += writeSync(fd, data, offset, data.length - offset);
}

function closeQuietly(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // the descriptor is released even when close reports a deferred write error
  }
}
