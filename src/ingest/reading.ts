/** A reading: one parsed telemetry message, the unit that flows from ingest through the queue into windows. */

export interface Reading {
  streamId: string;
  /** Record time, epoch ms (from the payload, or receive time when it had none). */
  ts: number;
  tsFromPayload: boolean;
  /** Receive time on the monotonic clock (performance.now() ms), for ingest→decision latency. */
  receivedAt: number;
  /** Channel index into the model's channels, or -1 when `values` holds every channel. */
  channel: number;
  value: number;
  /** One value per model channel, in manifest order, when channel === -1. */
  values: Float32Array | null;
}

/** Why a message or reading was turned away; the `reason` label of sentinel_readings_rejected_total. */
export const rejectReasons = [
  'oversized',
  'topic_too_long',
  'bad_stream_id',
  'rate_limited',
  'malformed',
  'invalid_payload',
  'non_finite',
  'bad_timestamp',
  'unknown_channel',
  'wrong_channel_count',
  'no_subscription',
  'out_of_order',
  'duplicate',
  'stream_limit',
] as const;
export type RejectReason = (typeof rejectReasons)[number];

export type ParseResult = { ok: true; reading: Reading } | { ok: false; reason: RejectReason; detail: string };
