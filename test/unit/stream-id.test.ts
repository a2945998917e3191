import { describe, expect, it } from 'vitest';
import { fitsBytes, streamIdProblem, utf8Length } from '../../src/ingest/stream-id.js';

describe('stream id limits', () => {
  it('counts UTF-8 bytes, not UTF-16 code units', () => {
    expect(utf8Length('')).toBe(0);
    expect(utf8Length('pump-1')).toBe(6);
    expect(utf8Length('\u007f')).toBe(1);
    expect(utf8Length('\u0080')).toBe(2);
    expect(utf8Length('é')).toBe(2);
    expect(utf8Length('\u07ff')).toBe(2);
    expect(utf8Length('\u0800')).toBe(3);
    expect(utf8Length('€')).toBe(3);
    expect(utf8Length('\uffff')).toBe(3);
    // a surrogate pair is one code point of 4 bytes, though its .length is 2
    expect(utf8Length('😀')).toBe(4);
    expect(utf8Length('a😀b')).toBe(6);
  });

  it('counts a lone surrogate as the 3 bytes of U+FFFD, as Buffer does', () => {
    for (const text of ['\ud800', '\udc00', 'a\ud83db', '\udc00\ud800', '\ud83d', `x${'\ud83d'}`]) {
      expect(utf8Length(text)).toBe(Buffer.byteLength(text, 'utf8'));
    }
    expect(utf8Length('\ud83d')).toBe(3);
    expect(utf8Length('\udc00\ud800')).toBe(6);
  });

  it('agrees with Buffer.byteLength on random mixed-width text', () => {
    // Fixed seed (mulberry32), so a failure reproduces.
    let seed = 0x5eed;
    const random = (): number => {
      seed = (seed + 0x6d2b79f5) | 0;
      let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
    const pools = [0x7f, 0x7ff, 0xffff];
    for (let n = 0; n < 500; n++) {
      let text = '';
      const len = Math.floor(random() * 12);
      for (let i = 0; i < len; i++) text += String.fromCharCode(Math.floor(random() * ((pools[i % 3] as number) + 1)));
      expect(utf8Length(text)).toBe(Buffer.byteLength(text, 'utf8'));
    }
  });

  it('fits a string of exactly maxBytes and refuses one byte more, on every path', () => {
    // ASCII: the length check alone decides
    expect(fitsBytes('a'.repeat(8), 8)).toBe(true);
    expect(fitsBytes('a'.repeat(9), 8)).toBe(false);
    // few enough code units that they fit even at 3 bytes each
    expect(fitsBytes('€€', 6)).toBe(true);
    // multi-byte text under the length limit but over the byte limit needs the full count
    expect(fitsBytes('éééé', 8)).toBe(true);
    expect(fitsBytes('éééé', 7)).toBe(false);
    expect(fitsBytes('€€€', 9)).toBe(true);
    expect(fitsBytes('€€€', 8)).toBe(false);
    expect(fitsBytes('😀😀', 8)).toBe(true);
    expect(fitsBytes('😀😀', 7)).toBe(false);
    expect(fitsBytes('', 0)).toBe(true);
  });

  it('accepts a printable id up to maxBytes and names the limit when it is longer', () => {
    expect(streamIdProblem('plant/line-1/pump-4', 19)).toBeNull();
    expect(streamIdProblem('plant/line-1/pump-4', 18)).toBe('stream id longer than ingest.maxStreamIdBytes 18');
    expect(streamIdProblem('ü'.repeat(5), 10)).toBeNull();
    expect(streamIdProblem('ü'.repeat(5), 9)).toMatch(/longer than ingest\.maxStreamIdBytes 9/);
    // printable non-ASCII and the characters just outside the control ranges are fine
    for (const ok of ['a b', 'a~b', 'a\u00a0b', 'a\u00ffb', 'pompe-é', '泵-1', 'a😀b', 'a/b', 'a$b']) {
      expect(streamIdProblem(ok, 64)).toBeNull();
    }
  });

  it.each([
    ['NUL', '\u0000'],
    ['tab', '\t'],
    ['newline', '\n'],
    ['unit separator 0x1f', '\u001f'],
    ['DEL 0x7f', '\u007f'],
    ['C1 0x80', '\u0080'],
    ['C1 CSI 0x9b', '\u009b'],
    ['C1 0x9f', '\u009f'],
    ['plus', '+'],
    ['hash', '#'],
  ])('refuses an id holding %s', (_name, char) => {
    expect(streamIdProblem(`pump${char}1`, 64)).toBe('stream id holds a control character, "+" or "#"');
    expect(streamIdProblem(char, 64)).not.toBeNull();
  });
});
