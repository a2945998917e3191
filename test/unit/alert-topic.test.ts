import { describe, expect, it } from 'vitest';
import { MAX_TOPIC_BYTES, alertTopic, topicProblem } from '../../src/alert/publisher.js';

describe('alertTopic / topicProblem', () => {
  it('measures the MQTT limit in UTF-8 bytes, not characters', () => {
    expect(alertTopic('p', 'pump-1')).toBe('p/pump-1');
    const prefix = 'p/';
    expect(topicProblem(prefix + 'x'.repeat(MAX_TOPIC_BYTES - 2))).toBeNull();
    expect(topicProblem(prefix + 'x'.repeat(MAX_TOPIC_BYTES - 1))).toBe('topic_too_long');
    // "é" is 2 bytes, "€" 3, "😀" 4 (a surrogate pair); a lone surrogate goes out as U+FFFD, 3 bytes.
    expect(topicProblem('é'.repeat(32_767) + 'x')).toBeNull();
    expect(topicProblem('é'.repeat(32_768))).toBe('topic_too_long');
    expect(topicProblem('€'.repeat(21_845))).toBeNull();
    expect(topicProblem('€'.repeat(21_845) + 'x')).toBe('topic_too_long');
    expect(topicProblem('😀'.repeat(16_383) + 'xxx')).toBeNull();
    expect(topicProblem('😀'.repeat(16_384))).toBe('topic_too_long');
    expect(topicProblem('\ud800'.repeat(21_846))).toBe('topic_too_long');
  });

  it('refuses what Mosquitto disconnects for: wildcards, NUL and controls, Unicode noncharacters', () => {
    for (const bad of ['a+b', 'a#', '\u0000', '\u0001', '\u001f', '\u007f', '\u0085', '\u009f', '\ufdd0', '\ufdef', '\ufffe', '\uffff', '\u{1fffe}', '\u{10ffff}']) {
      expect(topicProblem(`p/${bad}`), JSON.stringify(bad)).toBe('invalid_topic');
    }
    for (const good of ['pump-7', 'a/b/c', ' ', '\u00a0', '\ufdcf', '\ufdf0', '\ufffd', '\u{1f600}', '\u{1fffd}', '\ud800', '\udfff', '\udfffx', '$x', 'é']) {
      expect(topicProblem(`p/${good}`), JSON.stringify(good)).toBeNull();
    }
  });
});
