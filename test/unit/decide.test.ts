import { describe, expect, it } from 'vitest';
import { HysteresisDecider } from '../../src/decide/hysteresis.js';

const policy = { raiseThreshold: 10, clearThreshold: 5, raiseAfter: 3, resolveAfter: 2, cooldownMs: 10_000 };

function run(decider: HysteresisDecider, scores: number[], stream = 's', t0 = 0): Array<string | null> {
  return scores.map((score, i) => decider.decide(stream, t0 + i * 1000, score));
}

describe('hysteresis decisions', () => {
  it('raises after k consecutive windows above and resolves after m below', () => {
    const d = new HysteresisDecider(policy);
    const events = run(d, [12, 12, 3, 12, 12, 12, 20, 7, 4, 9, 4, 4, 1]);
    expect(events.map((e, i) => (e ? `${i}:${e}` : null)).filter(Boolean)).toEqual(['5:raised', '11:resolved']);
    expect(d.activeAlerts).toBe(0);
  });

  it('gives one raised and one resolved for a long fault with a noisy score (no storm)', () => {
    const d = new HysteresisDecider(policy);
    const scores = [...Array(10).fill(1), ...Array.from({ length: 50 }, (_, i) => (i % 4 === 0 ? 8 : 15)), ...Array(10).fill(1)];
    const events = run(d, scores).filter(Boolean);
    expect(events).toEqual(['raised', 'resolved']);
  });

  it('holds new alerts back during the cooldown (record time)', () => {
    const d = new HysteresisDecider(policy);
    expect(run(d, [11, 11, 11, 1, 1], 's', 0).filter(Boolean)).toEqual(['raised', 'resolved']);
    // resolved at t=4000 → cooldown until 14000; the fault at 5000..7000 must not raise
    expect(run(d, [11, 11, 11], 's', 5000).filter(Boolean)).toEqual([]);
    expect(run(d, [11, 11, 11], 's', 15000).filter(Boolean)).toEqual(['raised']);
  });

  it('keeps streams independent, never raises on NaN, and forgets evicted streams', () => {
    const d = new HysteresisDecider({ ...policy, raiseAfter: 1 });
    expect(d.decide('a', 0, 50)).toBe('raised');
    expect(d.decide('b', 0, Number.NaN)).toBeNull();
    expect(d.isRaised('a')).toBe(true);
    expect(d.isRaised('b')).toBe(false);
    expect(d.activeAlerts).toBe(1);
    d.forget('a');
    expect(d.activeAlerts).toBe(0);
    expect(d.isRaised('a')).toBe(false);
  });

  it('reports the peak score of the episode', () => {
    const d = new HysteresisDecider({ ...policy, raiseAfter: 1, resolveAfter: 1 });
    run(d, [11, 30, 12]);
    expect(d.peakScore('s')).toBe(30);
  });

  it('holds state only for streams with something to remember', () => {
    const d = new HysteresisDecider(policy);
    for (let s = 0; s < 1000; s++) run(d, [1, 2, 3, 4], `quiet-${s}`);
    expect(d.tracked).toBe(0);
    run(d, [12, 12], 'warming');
    expect(d.tracked).toBe(1);
    run(d, [1], 'warming', 5000);
    expect(d.tracked).toBe(0);
    // raised, resolved at 4000, cooling down until 14000: kept until the cooldown is over
    run(d, [11, 11, 11, 1, 1], 'fault');
    expect(d.tracked).toBe(1);
    expect(run(d, [1], 'fault', 6000)).toEqual([null]);
    expect(d.tracked).toBe(1);
    expect(run(d, [1], 'fault', 14_000)).toEqual([null]);
    expect(d.tracked).toBe(0);
    expect(run(d, [11, 11, 11], 'fault', 15_000)).toEqual([null, null, 'raised']);
  });

  describe('close(): an alert closed because its stream went silent', () => {
    it('returns the peak and the last score, and takes the alert out of activeAlerts', () => {
      const d = new HysteresisDecider(policy);
      expect(run(d, [12, 12, 12, 30, 8])).toEqual([null, null, 'raised', null, null]);
      expect(d.activeAlerts).toBe(1);
      expect(d.close('s')).toEqual({ peak: 30, last: 8 });
      expect(d.activeAlerts).toBe(0);
      expect(d.isRaised('s')).toBe(false);
      expect(d.tracked).toBe(0);
    });

    it('reports the raising score as both peak and last when nothing followed it', () => {
      const d = new HysteresisDecider({ ...policy, raiseAfter: 1 });
      expect(d.decide('s', 0, 42)).toBe('raised');
      expect(d.close('s')).toEqual({ peak: 42, last: 42 });
    });

    it('is null when no alert is open, and never counts an alert twice', () => {
      const d = new HysteresisDecider(policy);
      expect(d.close('unknown')).toBeNull();
      // A run of high scores that has not raised yet is not an open alert.
      run(d, [12, 12], 'warming');
      expect(d.close('warming')).toBeNull();
      expect(d.activeAlerts).toBe(0);
      run(d, [12, 12, 12], 'a');
      run(d, [12, 12, 12], 'b');
      expect(d.activeAlerts).toBe(2);
      expect(d.close('a')).not.toBeNull();
      expect(d.close('a')).toBeNull();
      expect(d.activeAlerts).toBe(1);
      expect(d.isRaised('b')).toBe(true);
      // Resolved by its scores: nothing left to close; the gauge does not go below zero.
      expect(run(d, [1, 1], 'b', 3000)).toEqual([null, 'resolved']);
      expect(d.close('b')).toBeNull();
      expect(d.activeAlerts).toBe(0);
    });

    it('lets the stream start afresh: a new fault raises again after the usual k windows', () => {
      const d = new HysteresisDecider(policy);
      run(d, [12, 12, 12]);
      d.close('s');
      expect(run(d, [12, 12, 12], 's', 5000)).toEqual([null, null, 'raised']);
      expect(d.activeAlerts).toBe(1);
    });

    it('after close, forget (eviction of the same stream) does not decrement again', () => {
      const d = new HysteresisDecider(policy);
      run(d, [12, 12, 12]);
      expect(d.close('s')).not.toBeNull();
      d.forget('s');
      expect(d.activeAlerts).toBe(0);
    });
  });
});
