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

/** Starts the daemon and stops it gracefully on SIGTERM/SIGINT; resolves with the exit code. */
export async function runCommand(path: string | undefined): Promise<number> {
  const config = loadConfigOrReport(path);
  if (config === null) return 2;
  const log = createLogger(config.log.level);
  const daemon = new Daemon(config, log);
  const stopped = new Promise<number>((resolve) => {
    const onSignal = (signal: NodeJS.Signals): void => {
      log.info({ signal }, 'shutting down: stopping intake and draining');
      void daemon.stop().then((drained) => resolve(drained ? 0 : 1));
    };
    process.once('SIGTERM', onSignal);
    process.once('SIGINT', onSignal);
  });
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
