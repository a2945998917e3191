/** HTTP clients for a daemon's probe port: plain GETs, and for attack tests exact bytes on a fresh socket, held partial requests, a slowloris swarm. */
import { get } from 'node:http';
import net from 'node:net';

export interface TextResponse {
  status: number;
  body: string;
}

/**
 * GET http://127.0.0.1:<port><path> without connection reuse. A pooled keep-alive connection races the
 * server's idle timeout (a request written just as the server closes the socket comes back ECONNRESET),
 * and that race is near certain against a daemon the overload runs keep paused with SIGSTOP.
 */
export function getText(port: number, path: string): Promise<TextResponse> {
  return new Promise((resolve, reject) => {
    const req = get({ host: '127.0.0.1', port, path, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('error', reject);
  });
}

export interface RawAnswer {
  /** The status code of the first response head, or null when the server closed without answering. */
  status: number | null;
  /** Everything received before the socket was closed (by either side). */
  text: string;
  /** Neither an answer nor a close came within the time allowed. */
  timedOut: boolean;
}

/**
 * Sends `bytes` on a fresh connection and resolves once the server has sent a complete response head
 * (the socket is then closed here), has closed the connection, or `timeoutMs` has passed. Never
 * rejects: a reset is an answer too.
 */
export function rawRequest(port: number, bytes: string | Buffer, localAddress?: string, timeoutMs = 5_000): Promise<RawAnswer> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port, localAddress });
    let text = '';
    let done = false;
    const finish = (timedOut = false): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(text);
      resolve({ status: m ? Number(m[1]) : null, text, timedOut });
    };
    const timer = setTimeout(() => finish(true), timeoutMs);
    socket.on('connect', () => socket.write(bytes));
    socket.on('data', (d: Buffer) => {
      text += d.toString('latin1');
      if (text.includes('\r\n\r\n')) finish();
    });
    socket.on('error', () => {});
    socket.on('close', () => finish());
  });
}

/** Retries `check`, one attempt at a time, until it holds; throws after `timeoutMs`. */
export async function eventually(check: () => Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** The start of a request whose head never ends: what a slowloris client sends, then stalls. */
export const PARTIAL_HEAD = 'GET /healthz HTTP/1.1\r\nHost: sentinel\r\nX-Slow: 1';

export interface HeldSocket {
  socket: net.Socket;
  /** Resolves when the socket closes, with the time and whatever the server sent first. */
  closed: Promise<{ at: number; text: string }>;
  isClosed(): boolean;
}

/** Connects, sends a partial request head and waits; resolves once connected. */
export function holdPartial(port: number, localAddress: string): Promise<HeldSocket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port, localAddress });
    let text = '';
    let isClosed = false;
    socket.on('data', (d: Buffer) => (text += d.toString('latin1')));
    socket.on('error', () => {});
    const closed = new Promise<{ at: number; text: string }>((done) =>
      socket.on('close', () => {
        isClosed = true;
        done({ at: Date.now(), text });
      }),
    );
    socket.once('connect', () => {
      socket.write(PARTIAL_HEAD);
      resolve({ socket, closed, isClosed: () => isClosed });
    });
    socket.once('close', () => reject(new Error(`closed before connecting from ${localAddress}`)));
  });
}

/** Ends a held socket's request head and resolves with the status of the answer (null: closed instead). */
export function completeHeld(held: HeldSocket): Promise<number | null> {
  return new Promise((resolve) => {
    let text = '';
    const onData = (d: Buffer): void => {
      text += d.toString('latin1');
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(text);
      if (m && text.includes('\r\n\r\n')) {
        held.socket.off('data', onData);
        resolve(Number(m[1]));
      }
    };
    held.socket.on('data', onData);
    void held.closed.then(() => resolve(null));
    held.socket.write('\r\n\r\n');
  });
}

export interface SlowlorisResult {
  opened: number;
  /** Failed to connect at all (refused by the kernel, or out of local ports). */
  failed: number;
  /** Closed by the server with nothing sent: turned away at once by a connection cap. */
  refused: number;
  /** Closed by the server with a 408 after their head deadline: held, then timed out. */
  timedOut: number;
  /** Anything else (a socket that was answered otherwise, or still open when the swarm ended). */
  other: number;
  /** For each timed-out socket: milliseconds from connect to close. */
  heldMs: number[];
}

/**
 * Opens `total` connections from `localAddress`, `burst` more every 20 ms with no cap on how many are
 * open, each sending a partial head and stalling until the server closes it (what a slowloris tool
 * does). Resolves once every one is closed, or after `maxMs` (those still open are destroyed then and
 * counted as `other`).
 */
export async function slowloris(port: number, localAddress: string, total: number, burst: number, maxMs: number): Promise<SlowlorisResult> {
  const result: SlowlorisResult = { opened: 0, failed: 0, refused: 0, timedOut: 0, other: 0, heldMs: [] };
  const open = new Set<net.Socket>();
  let started = 0;
  const deadline = Date.now() + maxMs;

  const one = (): void => {
    started++;
    const socket = net.connect({ host: '127.0.0.1', port, localAddress });
    open.add(socket);
    let connectedAt = 0;
    let text = '';
    socket.on('connect', () => {
      connectedAt = Date.now();
      result.opened++;
      socket.write(PARTIAL_HEAD);
    });
    socket.on('data', (d: Buffer) => (text += d.toString('latin1')));
    socket.on('error', () => {});
    socket.on('close', () => {
      open.delete(socket);
      if (connectedAt === 0) result.failed++;
      else if (text === '') result.refused++;
      else if (text.startsWith('HTTP/1.1 408')) {
        result.timedOut++;
        result.heldMs.push(Date.now() - connectedAt);
      } else result.other++;
    });
  };

  while (Date.now() < deadline && (started < total || open.size > 0)) {
    for (let i = 0; i < burst && started < total; i++) one();
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  for (const socket of open) {
    result.other++;
    socket.removeAllListeners('close');
    socket.destroy();
  }
  return result;
}
