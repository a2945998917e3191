import { describe, expect, it } from 'vitest';
import { beforeDeadline, Stages, type Stage } from '../../src/lifecycle/stage.js';

function recorder(): { events: string[]; stage(name: string, options?: { failStart?: boolean; failStop?: boolean; stopMs?: number }): Stage } {
  const events: string[] = [];
  return {
    events,
    stage: (name, options = {}) => ({
      name,
      async start() {
        if (options.failStart) throw new Error(`${name} cannot start`);
        events.push(`start ${name}`);
      },
      async stop(deadline) {
        if (options.stopMs) await new Promise((resolve) => setTimeout(resolve, options.stopMs));
        events.push(`stop ${name}${deadline.aborted ? ' (late)' : ''}`);
        if (options.failStop) throw new Error(`${name} stop bug`);
      },
    }),
  };
}

describe('Stages', () => {
  it('starts in the order given and stops in reverse, each stage once', async () => {
    const { events, stage } = recorder();
    const stages = new Stages({ onStopError: () => undefined });
    for (const name of ['probes', 'model', 'broker', 'alerts', 'pipeline', 'ingest']) await stages.start(stage(name));
    expect(stages.names).toEqual(['probes', 'model', 'broker', 'alerts', 'pipeline', 'ingest']);
    const late = await stages.stop(new AbortController().signal);
    await stages.stop(new AbortController().signal);
    expect(events).toEqual([
      'start probes', 'start model', 'start broker', 'start alerts', 'start pipeline', 'start ingest',
      'stop ingest', 'stop pipeline', 'stop alerts', 'stop broker', 'stop model', 'stop probes',
    ]);
    expect([...late]).toEqual([]);
  });

  it('a stage that fails to start is not stopped; the ones before it are', async () => {
    const { events, stage } = recorder();
    const stages = new Stages({ onStopError: () => undefined });
    await stages.start(stage('probes'));
    await stages.start(stage('model'));
    await expect(stages.start(stage('broker', { failStart: true }))).rejects.toThrow('broker cannot start');
    await stages.stop(new AbortController().signal);
    expect(events).toEqual(['start probes', 'start model', 'stop model', 'stop probes']);
  });

  it('a stop that throws is reported and the rest still stop', async () => {
    const { events, stage } = recorder();
    const errors: string[] = [];
    const stages = new Stages({ onStopError: (name, err) => errors.push(`${name}: ${(err as Error).message}`) });
    for (const s of [stage('a'), stage('b', { failStop: true }), stage('c')]) await stages.start(s);
    await stages.stop(new AbortController().signal);
    expect(events).toEqual(['start a', 'start b', 'start c', 'stop c', 'stop b', 'stop a']);
    expect(errors).toEqual(['b: b stop bug']);
  });

  it('names the stages whose stop ended after the deadline', async () => {
    const { events, stage } = recorder();
    const stages = new Stages({ onStopError: () => undefined });
    for (const s of [stage('link'), stage('alerts'), stage('pipeline', { stopMs: 60 }), stage('ingest')]) await stages.start(s);
    const grace = new AbortController();
    setTimeout(() => grace.abort(), 20);
    const late = await stages.stop(grace.signal);
    expect([...late].sort()).toEqual(['alerts', 'link', 'pipeline']);
    expect(events.slice(4)).toEqual(['stop ingest', 'stop pipeline (late)', 'stop alerts (late)', 'stop link (late)']);
  });
});

describe('beforeDeadline', () => {
  it('is true when the work settles first (even by rejecting), false when the deadline comes first', async () => {
    expect(await beforeDeadline(Promise.resolve(), new AbortController().signal)).toBe(true);
    expect(await beforeDeadline(Promise.reject(new Error('x')), new AbortController().signal)).toBe(true);
    const grace = new AbortController();
    setTimeout(() => grace.abort(), 10);
    expect(await beforeDeadline(new Promise(() => undefined), grace.signal)).toBe(false);
    expect(await beforeDeadline(Promise.resolve(), grace.signal)).toBe(false);
  });
});
