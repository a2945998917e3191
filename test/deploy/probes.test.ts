/**
 * The DaemonSet's probes against the built CLI, as the kubelet would call them: a node that boots with
 * its broker out of reach starts and stays alive (not restarted, not ready), and becomes ready when the
 * broker comes; SIGTERM stops it within the grace period.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { IContainer } from 'kubernetes-models/v1/Container';
import type { IPodSpec } from 'kubernetes-models/v1/PodSpec';
import { stringify as stringifyYaml } from 'yaml';
import { afterAll, describe, expect, it } from 'vitest';
import { startEmbeddedBroker, type EmbeddedBroker } from '../../src/broker/embedded.js';
import { startCli, type CliProcess } from '../support/cli.js';
import { findObject, hasTool, kustomize, repoRoot } from '../support/deploy.js';
import { getText } from '../support/http.js';
import { DEFAULT_MODEL } from '../support/model.js';
import { freePort, sleep, waitUntil } from '../support/proc.js';

const kubectl = hasTool('kubectl');

interface Probes {
  startup: string;
  liveness: string;
  readiness: string;
  graceSeconds: number;
}

/** The probe paths and grace period of the rendered CPU DaemonSet (the GPU one has the same). */
function renderedProbes(): Probes {
  const ds = findObject<{ spec: { template: { spec: IPodSpec } } }>(kustomize('k8s/overlays/fleet'), 'DaemonSet', 'sentinel-cpu');
  const main = ds.spec.template.spec.containers.find((c) => c.name === 'sentinel') as IContainer;
  return {
    startup: main.startupProbe?.httpGet?.path as string,
    liveness: main.livenessProbe?.httpGet?.path as string,
    readiness: main.readinessProbe?.httpGet?.path as string,
    graceSeconds: ds.spec.template.spec.terminationGracePeriodSeconds ?? 30,
  };
}

describe.skipIf(!kubectl)('the DaemonSet probes on a live daemon', () => {
  const dir = mkdtempSync(join(tmpdir(), 'sentinel-probes-'));
  let cli: CliProcess | null = null;
  let broker: EmbeddedBroker | null = null;
  afterAll(async () => {
    if (cli && cli.child.exitCode === null) cli.child.kill('SIGKILL');
    await broker?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('started and alive while the broker is out of reach, ready once it comes, stopped by SIGTERM within the grace period', async () => {
    const probes = renderedProbes();
    const [brokerPort, httpPort] = [await freePort(), await freePort()];
    const configPath = join(dir, 'sentinel.yaml');
    writeFileSync(
      configPath,
      stringifyYaml({
        nodeName: 'edge-probe',
        broker: { url: `mqtt://127.0.0.1:${brokerPort}`, clientId: `sentinel-probes-${process.pid}`, protocolVersion: 4, reconnectMinMs: 100, reconnectMaxMs: 300 },
        subscriptions: [{ topic: 'sensors/edge-probe/+/telemetry', stream: 'edge-probe/{1}', format: 'json-values', qos: 1 }],
        model: { path: join(repoRoot, DEFAULT_MODEL) },
        outbox: { path: join(dir, 'outbox.jsonl') },
        http: { host: '127.0.0.1', port: httpPort },
        log: { level: 'info' },
      }),
    );
    cli = startCli(['run', '--config', configPath]);
    const status = async (path: string): Promise<number> => (await getText(httpPort, path).catch(() => ({ status: 0 }))).status;

    await waitUntil(async () => (await status(probes.startup)) === 200, 30_000, `${probes.startup} to answer 200 with the broker away`);
    // What the kubelet sees for a while: started (so liveness takes over) and alive, not ready.
    for (let i = 0; i < 6; i++) {
      expect(await status(probes.liveness)).toBe(200);
      expect(await status(probes.readiness)).toBe(503);
      expect(await status(probes.startup)).toBe(200);
      await sleep(250);
    }
    expect(cli.child.exitCode).toBeNull();

    broker = await startEmbeddedBroker('127.0.0.1', brokerPort);
    await waitUntil(async () => (await status(probes.readiness)) === 200, 15_000, `${probes.readiness} to answer 200 once the broker is there`);

    const started = Date.now();
    cli.child.kill('SIGTERM');
    expect(await cli.exited).toBe(0);
    expect(Date.now() - started).toBeLessThan(probes.graceSeconds * 1000);
  });
});
