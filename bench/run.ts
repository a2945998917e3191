/** `npm run bench`: every Sentinel benchmark in one run; results go to bench/results/latest.{json,md}. */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { BenchContext } from './context.js';
import { ensureBuilt } from './lib/daemon.js';
import { targetChecks, writeResults, type BenchResults } from './report.js';
import { runHotpath } from './sections/hotpath.js';
import { runLatency } from './sections/latency.js';
import { runMemory } from './sections/memory.js';
import { runModel } from './sections/model.js';
import { runOverload } from './sections/overload.js';
import { runRoutes } from './sections/routes.js';
import { runThroughput } from './sections/throughput.js';
import { readSettings, type SectionName } from './settings.js';

function quiet(command: string, args: string[]): string | null {
  try {
    return execFileSync(command, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
  } catch {
    return null;
  }
}

async function main(): Promise<number> {
  const settings = readSettings();
  const log = (line: string): void => console.log(line);
  ensureBuilt(log);
  const started = Date.now();
  const dir = mkdtempSync(join(tmpdir(), 'sentinel-bench-'));
  const ctx = new BenchContext(settings, dir, log);
  const results: BenchResults = {
    meta: {
      startedAt: new Date(started).toISOString(),
      durationSeconds: 0,
      node: process.versions.node,
      cpus: cpus().length,
      cpuModel: cpus()[0]?.model ?? 'unknown',
      commit: quiet('git', ['rev-parse', '--short', 'HEAD']),
      mosquitto: { version: null, config: null },
      brokerNote: '',
    },
    settings,
    targets: [],
    errors: [],
  };
  const section = async (name: SectionName, body: () => Promise<void>): Promise<void> => {
    if (!settings.sections.includes(name)) return;
    log(`${name}…`);
    try {
      await body();
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      results.errors.push({ section: name, message });
      log(`  ${name} failed: ${message}`);
    }
  };
  try {
    if (settings.brokers.includes('mosquitto') && settings.sections.some((s) => s !== 'model' && s !== 'hotpath')) {
      const broker = await ctx.mosquitto();
      results.meta.mosquitto = {
        version: settings.mqttUrl ? null : (quiet('mosquitto', ['-h'])?.split('\n')[0] ?? null),
        config: broker.config,
      };
    }
    results.meta.brokerNote = settings.mqttUrl
      ? `external broker ${settings.mqttUrl} (BENCH_MQTT_URL); its CPU is not measured.`
      : `our own Mosquitto child (config in meta.mosquitto.config) for "mosquitto"; the daemon's embedded aedes (MQTT 3.1.1) for "embedded".`;
    await section('model', async () => {
      results.model = await runModel(ctx);
    });
    await section('hotpath', async () => {
      results.hotpath = await runHotpath(ctx);
    });
    await section('throughput', async () => {
      results.throughput = await runThroughput(ctx);
    });
    await section('routes', async () => {
      results.routes = await runRoutes(ctx);
    });
    // "Sustained" = the daemon's QoS 1 rate for json-values (what latency and overload publish) through the first broker, measured above.
    const first = settings.brokers[0];
    const sustained = results.throughput?.comparisons.find((c) => c.broker === first && c.format === 'json-values' && c.qos === 1)?.daemonRate ?? null;
    await section('latency', async () => {
      results.latency = await runLatency(ctx, sustained);
    });
    await section('overload', async () => {
      results.overload = await runOverload(ctx, sustained);
    });
    await section('memory', async () => {
      results.memory = await runMemory(ctx);
    });
  } finally {
    await ctx.close();
    rmSync(dir, { recursive: true, force: true });
  }
  results.meta.durationSeconds = (Date.now() - started) / 1000;
  results.targets = targetChecks(results);
  const { json, md } = writeResults(results);
  log(`\nwrote ${json} and ${md} (${results.meta.durationSeconds.toFixed(0)} s)`);
  for (const t of results.targets) log(`${t.met ? 'met   ' : 'MISSED'}  ${t.target}: ${t.measured}`);
  return results.errors.length > 0 ? 1 : 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  },
);
