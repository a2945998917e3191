/** The `api` config section: the HTTP scoring API's listener, auth and bounds (off by default). */
import { z } from 'zod';

export const apiConfigSchema = z
  .strictObject({
    enabled: z.boolean().default(false).describe('serve POST /v1/score and GET /v1/models on their own listener'),
    host: z.string().min(1).default('127.0.0.1').describe('scoring API bind address (loopback: set 0.0.0.0 and a tokenFile to expose it)'),
    port: z.number().int().min(0).max(65_535).default(9465).describe('scoring API port, apart from the metrics and probes port'),
    tokenFile: z
      .string()
      .min(1)
      .optional()
      .describe('file holding the bearer token every request must send (Authorization: Bearer …); re-read when it changes; unset: no auth'),
    maxBodyBytes: z.number().int().min(1_024).max(64 * 1024 * 1024).default(1_048_576).describe('larger request bodies are refused with 413 (reading stops at the cap)'),
    maxWindowsPerRequest: z.number().int().min(1).max(65_536).default(256).describe('windows one request may carry; more is 413'),
    maxQueuedWindows: z
      .number()
      .int()
      .min(1)
      .max(1_048_576)
      .default(2_048)
      .describe('windows accepted and not yet scored, all requests together; a request beyond it is refused with 429 and Retry-After'),
    batchDelayMs: z.number().int().min(0).max(1_000).default(2).describe('requests arriving within this long of the first waiting one share one model run'),
    maxConnections: z.number().int().min(1).max(4096).default(32).describe('open connections to the API port; more are closed at once'),
    maxConnectionsPerClient: z.number().int().min(1).max(4096).default(8).describe('open connections from one remote address'),
    headersTimeoutMs: z.number().int().min(100).max(60_000).default(5_000).describe('a request whose headers take longer is closed (slowloris)'),
    requestTimeoutMs: z.number().int().min(100).max(300_000).default(15_000).describe('a request (body included) that takes longer to arrive is closed; also bounds a client that does not read its answer'),
  })
  .superRefine((api, ctx) => {
    if (api.headersTimeoutMs > api.requestTimeoutMs) {
      ctx.addIssue({
        code: 'custom',
        path: ['headersTimeoutMs'],
        message: `${api.headersTimeoutMs} is above api.requestTimeoutMs (${api.requestTimeoutMs}) — fix: keep headersTimeoutMs ≤ requestTimeoutMs`,
      });
    }
    if (api.maxWindowsPerRequest > api.maxQueuedWindows) {
      ctx.addIssue({
        code: 'custom',
        path: ['maxWindowsPerRequest'],
        message: `${api.maxWindowsPerRequest} is above api.maxQueuedWindows (${api.maxQueuedWindows}), so a full request could never be queued — fix: raise maxQueuedWindows`,
      });
    }
  })
  .prefault({});

export type ApiConfig = z.infer<typeof apiConfigSchema>;
