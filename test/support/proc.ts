/** Child processes for the bench and the tests: CPU seconds and resident memory from /proc, a SIGSTOP duty cycle, free ports, polling. */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';

let ticksPerSecond: number | null = null;

function clockTicks(): number {
  if (ticksPerSecond === null) {
    try {
      ticksPerSecond = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      ticksPerSecond = 100;
    }
  }
  return ticksPerSecond;
}

/** utime + stime of a process in seconds; /proc/<pid>/stat fields 14 and 15 (after the parenthesised name). */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // fields[0] is field 3 (state), so utime (14) is fields[11] and stime (15) is fields[12].
  return (Number(fields[11]) + Number(fields[12])) / clockTicks();
}

export interface MemorySample {
  rssBytes: number;
  /** Peak RSS of the process so far (VmHWM). */
  peakRssBytes: number;
}

export function memory(pid: number): MemorySample {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (key: string): number => {
    const match = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status);
    return match ? Number(match[1]) * 1024 : Number.NaN;
  };
  return { rssBytes: kb('VmRSS'), peakRssBytes: kb('VmHWM') };
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A TCP port that was free a moment ago on 127.0.0.1. */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

export async function waitUntil(condition: () => boolean | Promise<boolean>, timeoutMs: number, what: string, everyMs = 50): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

/**
 * Pauses `pid` (SIGSTOP) for (1 − duty) of every 100 ms — the way a CFS CPU limit throttles a container —
 * so that a few mqtt.js publishers on a small machine can push a daemon 2× past what it can take. Used by
 * the overload bench and the overload reliability test. duty 1 leaves it alone.
 */
export function dutyCycle(pid: number, duty: number): { stop(): void } {
  if (duty >= 1) return { stop: () => {} };
  const pauseMs = Math.round((1 - duty) * 100);
  let resume: NodeJS.Timeout | null = null;
  const cont = (): void => {
    resume = null;
    process.kill(pid, 'SIGCONT');
  };
  const timer = setInterval(() => {
    process.kill(pid, 'SIGSTOP');
    resume = setTimeout(cont, pauseMs);
  }, 100);
  return {
    stop() {
      clearInterval(timer);
      if (resume !== null) clearTimeout(resume);
      process.kill(pid, 'SIGCONT');
    },
  };
}
