/** The http.* config keys of the live status page (a leaf module: zod only, for src/config/schema.ts). */
import { z } from 'zod';

/** The http.* keys of the status page; the config schema spreads `.shape` into its http object. */
export const statusPageConfigSchema = z.object({
  statusPage: z.boolean().default(true).describe('serve the live status page: GET / (HTML), /events (server-sent events) and /status.json on this port'),
  maxSseClients: z.number().int().min(1).max(256).default(4).describe('open /events streams at most (each holds a connection of maxConnections); more are answered 503'),
  statusIntervalMs: z.number().int().min(200).max(60_000).default(500).describe('how often the status snapshot is taken and sent to every /events client'),
  statusTopStreams: z.number().int().min(1).max(100).default(10).describe('streams shown by score, each with a score sparkline'),
});
export type StatusPageConfig = z.infer<typeof statusPageConfigSchema>;
