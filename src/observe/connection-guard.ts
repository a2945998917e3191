/**
 * What every Sentinel HTTP listener (probes and status page, scoring API) does at the socket: at most
 * `maxPerClient` open connections from one remote address, and an answer (or a plain close) for bytes
 * Node's parser refuses or a deadline that passed, counted by reason. The total cap is the server's
 * own maxConnections ('drop').
 */
import { createServer, type RequestListener, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Duplex } from 'node:stream';

export type GuardRejectReason = 'client_limit' | 'timeout' | 'bad_request';
/** Also the total cap: Node refused the connection ('drop'), or a failed accept (out of descriptors). */
export type ServerRejectReason = GuardRejectReason | 'connection_limit';

/** Node checks header and request deadlines only this often (its default, 30 s, let slowloris hold sockets that long). */
const CHECK_INTERVAL_MS = 500;

const raw = (status: string): string => `HTTP/1.1 ${status}\r\nconnection: close\r\ncontent-length: 0\r\n\r\n`;
export const BAD_REQUEST = raw('400 Bad Request');
const REQUEST_TIMEOUT = raw('408 Request Timeout');
const HEADERS_TOO_LARGE = raw('431 Request Header Fields Too Large');
/** The peer went away: nothing to answer, nothing to count. */
const PEER_GONE = new Set(['ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'HPE_INVALID_EOF_STATE']);

export class ConnectionGuard {
  private readonly perClient = new Map<string, number>();

  constructor(
    private readonly maxPerClient: number,
    private readonly reject: (reason: GuardRejectReason) => void,
  ) {}

  /** For server.on('connection'). */
  readonly onConnection = (socket: Socket): void => {
    const address = socket.remoteAddress;
    if (address === undefined) {
      socket.destroy(); // already gone
      return;
    }
    const open = this.perClient.get(address) ?? 0;
    if (open >= this.maxPerClient) {
      socket.destroy();
      this.reject('client_limit');
      return;
    }
    this.perClient.set(address, open + 1);
    socket.once('close', () => {
      const left = (this.perClient.get(address) ?? 1) - 1;
      if (left > 0) this.perClient.set(address, left);
      else this.perClient.delete(address);
    });
  };

  /** For server.on('clientError'): Node's parser refused the bytes, a deadline passed, or the socket failed. */
  readonly onClientError = (err: NodeJS.ErrnoException, socket: Duplex): void => {
    const code = err.code ?? '';
    if (!PEER_GONE.has(code)) {
      const timeout = code === 'ERR_HTTP_REQUEST_TIMEOUT';
      this.reject(timeout ? 'timeout' : 'bad_request');
      if (socket.writable && (socket as Socket).bytesWritten === 0) {
        socket.write(timeout ? REQUEST_TIMEOUT : code === 'HPE_HEADER_OVERFLOW' ? HEADERS_TOO_LARGE : BAD_REQUEST);
      }
    }
    socket.destroy();
  };

  clear(): void {
    this.perClient.clear();
  }
}

export interface GuardedServerOptions {
  host: string;
  port: number;
  maxConnections: number;
  maxConnectionsPerClient: number;
  /** Already bounded by requestTimeoutMs. */
  headersTimeoutMs: number;
  requestTimeoutMs: number;
  /** An idle keep-alive socket is closed after this (at most headersTimeoutMs). */
  keepAliveMs: number;
  /** A larger request head is refused with 431. */
  maxHeaderBytes: number;
}

export interface GuardedServer {
  server: Server;
  guard: ConnectionGuard;
  /** The port listened on (the configured one, or the one picked for port 0). */
  port: number;
}

/**
 * An HTTP server with Node's deadlines, the total and per-address connection caps and the guard's
 * answers, listening; rejects with the listen error. After listen, a failed accept out of descriptors
 * counts as a refused connection and any other server error goes to `onError`.
 */
export async function listenGuarded(
  options: GuardedServerOptions,
  onRequest: RequestListener,
  reject: (reason: ServerRejectReason) => void,
  onError: (err: Error) => void,
): Promise<GuardedServer> {
  const server = createServer(
    {
      connectionsCheckingInterval: CHECK_INTERVAL_MS,
      headersTimeout: options.headersTimeoutMs,
      requestTimeout: options.requestTimeoutMs,
      keepAliveTimeout: Math.min(options.keepAliveMs, options.headersTimeoutMs),
      maxHeaderSize: options.maxHeaderBytes,
    },
    onRequest,
  );
  const guard = new ConnectionGuard(options.maxConnectionsPerClient, reject);
  // Node closes a connection over this at once, before any HTTP state exists for it, and emits 'drop'.
  server.maxConnections = options.maxConnections;
  server.on('drop', () => reject('connection_limit'));
  server.on('connection', guard.onConnection);
  server.on('clientError', guard.onClientError);
  await new Promise<void>((resolve, fail) => {
    server.once('error', fail);
    server.listen(options.port, options.host, () => {
      server.off('error', fail);
      resolve();
    });
  });
  server.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EMFILE' || err.code === 'ENFILE') reject('connection_limit');
    else onError(err);
  });
  return { server, guard, port: (server.address() as AddressInfo).port };
}
