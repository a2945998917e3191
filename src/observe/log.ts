/** Logging: pino JSON to stdout, plus a limiter so bad input cannot flood the log. */
import { pino, type Logger } from 'pino';

export type { Logger };

export function createLogger(level: string, destination?: NodeJS.WritableStream): Logger {
  return pino(
    {
      level,
      base: { service: 'sentinel' },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: { paths: ['password', '*.password', '*.*.password', 'config.broker.password'], censor: '[redacted]' },
    },
    destination ?? pino.destination({ dest: 1, sync: true }),
  );
}

/** At most one warning per key per interval; the next one says how many were suppressed. */
export class RateLimitedWarner {
  private readonly last = new Map<string, { at: number; suppressed: number }>();

  constructor(
    private readonly log: Logger,
    private readonly intervalMs: number,
  ) {}

  warn(key: string, fields: Record<string, unknown>, message: string): void {
    const now = Date.now();
    const entry = this.last.get(key);
    if (entry && now - entry.at < this.intervalMs) {
      entry.suppressed++;
      return;
    }
    this.log.warn({ ...fields, suppressed: entry?.suppressed ?? 0 }, message);
    this.last.set(key, { at: now, suppressed: 0 });
  }
}
