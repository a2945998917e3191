/**
 * The door for names that flow from a topic into alert topics, metric-free logs and memory: a stream id
 * (or topic) must be short enough and free of control characters before anything keeps it.
 */

/** UTF-8 length of a string (lone surrogates count as the 3 bytes of U+FFFD, as the encoder writes them). */
export function utf8Length(text: string): number {
  return Buffer.byteLength(text, 'utf8');
}

/** True when `text` is at most `maxBytes` in UTF-8; cheap for the common short ASCII case. */
export function fitsBytes(text: string, maxBytes: number): boolean {
  if (text.length > maxBytes) return false;
  if (text.length * 3 <= maxBytes) return true;
  return utf8Length(text) <= maxBytes;
}

/**
 * Why a stream id cannot be used, or null when it can: it becomes part of an alert topic
 * (`<alert.prefix>/<streamId>`), a log field and a map key, so it is bounded and printable.
 * MQTT topic names cannot hold "+", "#" or U+0000; C0/C1 controls break log readers and terminals.
 */
export function streamIdProblem(streamId: string, maxBytes: number): string | null {
  if (!fitsBytes(streamId, maxBytes)) return `stream id longer than ingest.maxStreamIdBytes ${maxBytes}`;
  for (let i = 0; i < streamId.length; i++) {
    const c = streamId.charCodeAt(i);
    if (c < 0x20 || (c >= 0x7f && c <= 0x9f) || c === 0x2b || c === 0x23) return 'stream id holds a control character, "+" or "#"';
  }
  return null;
}
