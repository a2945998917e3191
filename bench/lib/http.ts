/** Plain HTTP GETs against a daemon's probe port, on a fresh connection each. */
import { get } from 'node:http';

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
