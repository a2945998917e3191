/** `sentinel run` and `sentinel check-config`: start the daemon, or only validate what it would start with. */
import { existsSync } from 'node:fs';
import { ConfigError, loadConfig, redactConfig, redactUrl } from '../config/load.js';
import type { Config } from '../config/schema.js';
import { compileRules, Daemon } from '../daemon.js';
import { readManifest } from '../model/scorer.js';
import { createLogger } from '../observe/log.js';

/** Loads config and reports problems on stderr; null when invalid. */
export function loadConfigOrReport(path: string | undefined): Config | null {
  try {
    const config = loadConfig({ path });
    compileRules(config);
    return config;
  } catch (err) {
    process.stderr.write(`${err instanceof ConfigError ? err.message : `invalid config: ${(err as Error).message}`}\n`);
    return null;
  }
}

export async function checkConfigCommand(path: string | undefined): Promise<number> {
  const config = loadConfigOrReport(path);
  if (config === null) return 2;
  if (!existsSync(config.model.path)) {
    process.stderr.write(`model.path: ${config.model.path} does not exist — fix: train one with \`sentinel train\` or point model.path at a model\n`);
    return 2;
  }
  try {
    await readManifest(config.model.path);
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n`);
    return 2;
  }
  process.stdout.write(`${JSON.stringify(redactConfig(config), null, 2)}\nconfig OK\n`);
  return 0;
}

/**
 * Starts the daemon and stops it gracefully on SIGTERM/SIGINT; resolves with the exit code.
 * A second SIGTERM/SIGINT does not cut the drain short (shutdown.graceMs bounds it); SIGHUP re-reads
 * the model file, as daemons conventionally reload on it, and never stops the process.
 */
export async function runCommand(path: string | undefined): Promise<number> {
  const config = loadConfigOrReport(path);
  if (config === null) return 2;
  const log = createLogger(config.log.level);
  const daemon = new Daemon(config, log);
  let stopping: Promise<boolean> | null = null;
  const stopped = new Promise<number>((resolve) => {
    const onSignal = (signal: NodeJS.Signals): void => {
      if (stopping !== null) {
        log.warn({ signal, graceMs: config.shutdown.graceMs }, 'already shutting down: the drain goes on (bounded by shutdown.graceMs)');
        return;
      }
      log.info({ signal }, 'shutting down: stopping intake and draining');
      stopping = daemon.stop();
      stopping.then(
        (drained) => resolve(drained ? 0 : 1),
        (err: unknown) => {
          log.error({ err: (err as Error).message }, 'shutdown failed');
          resolve(1);
        },
      );
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  });
  process.on('SIGHUP', () => {
    log.info({ signal: 'SIGHUP', path: config.model.path }, 'SIGHUP: re-reading the model file');
    daemon.reloadModel().catch((err: unknown) => daemon.internalError('model', err));
  });
  // The last line of defence: every stage handles its own errors, so reaching here is a bug. It is
  // counted (sentinel_internal_errors_total{stage="process"}) and logged; the process carries on,
  // because an outsider who found such a bug could otherwise stop every node at will.
  process.on('unhandledRejection', (reason) => daemon.internalError('process', reason));
  process.on('uncaughtException', (err) => daemon.internalError('process', err));
  try {
    await daemon.start();
  } catch (err) {
    log.fatal({ err: (err as Error).message }, 'startup failed');
    await daemon.stop().catch(() => false);
    log.flush();
    process.stderr.write(`startup failed: ${(err as Error).message}\n`);
    return 1;
  }
  log.info({ node: config.nodeName, broker: redactUrl(daemon.brokerUrl), httpPort: daemon.httpPort }, 'sentinel ready');
  const code = await stopped;
  log.flush();
  return code;
}
