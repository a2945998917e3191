/**
 * The fast path for JSON telemetry: reads `{"ts":…,"values":{"<channel>":<number>,…}}` and
 * `{"ts":…,"value":<number>}` straight from the payload bytes, with no string, no parse tree and no
 * schema run. It takes only plainly valid payloads (no escapes, no unknown keys, every model channel once,
 * numbers finite in float32) and answers false for anything else; PayloadParser then takes the general
 * path (JSON.parse and the zod schemas), which decides and names the reason. A property test holds both
 * paths to the same results.
 */

const QUOTE = 0x22;
const COMMA = 0x2c;
const COLON = 0x3a;
const MINUS = 0x2d;
const PLUS = 0x2b;
const DOT = 0x2e;
const ZERO = 0x30;
const NINE = 0x39;
const OPEN = 0x7b;
const CLOSE = 0x7d;
const BACKSLASH = 0x5c;

const KEY_OTHER = 0;
const KEY_TS = 1;
const KEY_VALUES = 2;
const KEY_VALUE = 3;

/** Exact doubles 1e0 … 1e22: a mantissa below 2^53 times or over one of these is correctly rounded. */
const POW10 = Array.from({ length: 23 }, (_, i) => Number(`1e${i}`));
/** Significant digits that always fit a double's 53-bit mantissa exactly. */
const EXACT_DIGITS = 15;
const FLOAT32_MAX = 3.4028234663852886e38;
const MAX_TS_TEXT = 64;

function isSpace(b: number): boolean {
  return b === 0x20 || b === 0x0a || b === 0x0d || b === 0x09;
}

export class TelemetryScanner {
  private readonly names: Uint8Array[];
  /** Channel values of the last scan, in model channel order (json-values). */
  readonly values: Float64Array;
  /** seen[c] === stamp: channel c was in this payload. */
  private readonly seen: Uint32Array;
  private stamp = 0;
  /** The last scan's payload `value` (json-value). */
  value = Number.NaN;
  hasTs = false;
  /** The payload ts when it was a number, else NaN. */
  tsNumber = Number.NaN;
  /** The payload ts when it was a string, else null. */
  tsText: string | null = null;
  private bytes: Buffer = Buffer.alloc(0);
  private pos = 0;

  constructor(channels: readonly string[]) {
    this.names = channels.map((c) => Buffer.from(c, 'utf8'));
    this.values = new Float64Array(channels.length);
    this.seen = new Uint32Array(channels.length);
  }

  /** Scans one payload; `multi` picks `{"values":{…}}` over `{"value":…}`. True when the payload took the fast path. */
  scan(bytes: Buffer, multi: boolean): boolean {
    this.bytes = bytes;
    this.pos = 0;
    this.hasTs = false;
    this.tsNumber = Number.NaN;
    this.tsText = null;
    this.value = Number.NaN;
    let body = false;
    this.skipSpace();
    if (this.next() !== OPEN) return false;
    this.skipSpace();
    for (;;) {
      const key = this.key();
      this.skipSpace();
      if (this.next() !== COLON) return false;
      this.skipSpace();
      if (key === KEY_TS) {
        if (this.hasTs || !this.timestamp()) return false;
        this.hasTs = true;
      } else if (multi && key === KEY_VALUES) {
        if (body || !this.channelValues()) return false;
        body = true;
      } else if (!multi && key === KEY_VALUE) {
        if (body) return false;
        const v = this.number();
        if (!(v <= FLOAT32_MAX && v >= -FLOAT32_MAX)) return false;
        this.value = v;
        body = true;
      } else return false;
      this.skipSpace();
      const b = this.next();
      if (b === CLOSE) break;
      if (b !== COMMA) return false;
      this.skipSpace();
    }
    this.skipSpace();
    return body && this.pos === this.bytes.length;
  }

  private next(): number {
    return this.pos < this.bytes.length ? (this.bytes[this.pos++] as number) : -1;
  }

  private skipSpace(): void {
    const bytes = this.bytes;
    let p = this.pos;
    while (p < bytes.length && isSpace(bytes[p] as number)) p++;
    this.pos = p;
  }

  /** A plain string (no escapes or control bytes): returns [start, end) of its bytes, or -1 as start. */
  private plainString(): number {
    // Locals, not this.pos, in the byte loops: names and keys are most of a payload's bytes.
    const bytes = this.bytes;
    const end = bytes.length;
    let p = this.pos;
    if (bytes[p] !== QUOTE) return -1;
    const start = ++p;
    while (p < end) {
      const b = bytes[p] as number;
      if (b === QUOTE) {
        this.pos = p + 1;
        return start;
      }
      if (b === BACKSLASH || b < 0x20) return -1;
      p++;
    }
    return -1;
  }

  private key(): number {
    const start = this.plainString();
    if (start < 0) return KEY_OTHER;
    const bytes = this.bytes;
    const len = this.pos - 1 - start;
    if (len === 2 && bytes[start] === 0x74 && bytes[start + 1] === 0x73) return KEY_TS;
    if (bytes[start] !== 0x76 || bytes[start + 1] !== 0x61 || bytes[start + 2] !== 0x6c || bytes[start + 3] !== 0x75 || bytes[start + 4] !== 0x65) {
      return KEY_OTHER;
    }
    if (len === 5) return KEY_VALUE;
    return len === 6 && bytes[start + 5] === 0x73 ? KEY_VALUES : KEY_OTHER;
  }

  private timestamp(): boolean {
    if (this.bytes[this.pos] === QUOTE) {
      const start = this.plainString();
      if (start < 0) return false;
      const end = this.pos - 1;
      if (end - start > MAX_TS_TEXT) return false;
      for (let i = start; i < end; i++) if ((this.bytes[i] as number) >= 0x80) return false;
      this.tsText = this.bytes.toString('latin1', start, end);
      return true;
    }
    const ts = this.number();
    if (!Number.isFinite(ts)) return false;
    this.tsNumber = ts;
    return true;
  }

  private channelValues(): boolean {
    const seen = this.seen;
    const stamp = this.nextStamp();
    if (this.next() !== OPEN) return false;
    this.skipSpace();
    let count = 0;
    for (;;) {
      const start = this.plainString();
      if (start < 0) return false;
      const index = this.channelAt(start, this.pos - 1);
      if (index < 0 || seen[index] === stamp) return false;
      this.skipSpace();
      if (this.next() !== COLON) return false;
      this.skipSpace();
      const v = this.number();
      if (!(v <= FLOAT32_MAX && v >= -FLOAT32_MAX)) return false;
      this.values[index] = v;
      seen[index] = stamp;
      count++;
      this.skipSpace();
      const b = this.next();
      if (b === CLOSE) break;
      if (b !== COMMA) return false;
      this.skipSpace();
    }
    return count === this.names.length;
  }

  /** A fresh mark for `seen`, so no clearing per payload. */
  private nextStamp(): number {
    if (this.stamp === 0xffffffff) {
      this.seen.fill(0);
      this.stamp = 0;
    }
    return ++this.stamp;
  }

  private channelAt(start: number, end: number): number {
    const bytes = this.bytes;
    const len = end - start;
    outer: for (let c = 0; c < this.names.length; c++) {
      const name = this.names[c] as Uint8Array;
      if (name.length !== len) continue;
      for (let i = 0; i < len; i++) if (name[i] !== bytes[start + i]) continue outer;
      return c;
    }
    return -1;
  }

  /** A JSON number (RFC 8259 grammar) as the double JSON.parse gives, or NaN when the bytes are not one. */
  private number(): number {
    const bytes = this.bytes;
    const end = bytes.length;
    const start = this.pos;
    let p = start;
    const negative = bytes[p] === MINUS;
    if (negative) p++;
    let b = p < end ? (bytes[p] as number) : -1;
    if (b < ZERO || b > NINE) return Number.NaN;
    // Every digit goes into the mantissa; leading zeros are not significant.
    let mantissa = 0;
    let digits = 0;
    let scale = 0;
    if (b === ZERO) {
      p++;
      b = p < end ? (bytes[p] as number) : -1;
      if (b >= ZERO && b <= NINE) return Number.NaN;
    } else {
      while (p < end && (b = bytes[p] as number) >= ZERO && b <= NINE) {
        if (mantissa !== 0 || b !== ZERO) {
          digits++;
          mantissa = mantissa * 10 + (b - ZERO);
        }
        p++;
      }
    }
    if (p < end && bytes[p] === DOT) {
      const first = ++p;
      while (p < end && (b = bytes[p] as number) >= ZERO && b <= NINE) {
        if (mantissa !== 0 || b !== ZERO) {
          digits++;
          mantissa = mantissa * 10 + (b - ZERO);
        }
        scale--;
        p++;
      }
      if (p === first) return Number.NaN;
    }
    let exponent = 0;
    if (p < end && (bytes[p] === 0x65 || bytes[p] === 0x45)) {
      p++;
      const negativeExponent = bytes[p] === MINUS;
      if (negativeExponent || bytes[p] === PLUS) p++;
      const first = p;
      while (p < end && (b = bytes[p] as number) >= ZERO && b <= NINE) {
        if (exponent < 100_000) exponent = exponent * 10 + (b - ZERO);
        p++;
      }
      if (p === first) return Number.NaN;
      if (negativeExponent) exponent = -exponent;
    }
    this.pos = p;
    const power = exponent + scale;
    if (digits > EXACT_DIGITS || power > 22 || power < -22) return Number(bytes.toString('latin1', start, p));
    const magnitude = power >= 0 ? mantissa * (POW10[power] as number) : mantissa / (POW10[-power] as number);
    return negative ? -magnitude : magnitude;
  }
}
