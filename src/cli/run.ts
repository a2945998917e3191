/** `sentinel run` and `sentinel check-config`: start the daemon, or only validate what it would start with. */
import { formatProblem, redactConfig, redactUrl, type ConfigProblem } from '../config/load.js';
import { Daemon } from '../daemon.js';
import { createLogger } from '../observe/log.js';
import { preflight } from './preflight.js';

/** One line per problem on stderr. */
function report(problems: readonly ConfigProblem[]): void {
  process.stderr.write(`${problems.map(formatProblem).join('\n')}\n`);
}

export async function checkConfigCommand(path: string | undefined): Promise<number> {
  const { config, configProblems, modelProblems } = await preflight(path);
  const problems = [...configProblems, ...modelProblems];
  if (config === null || problems.length > 0) {
    report(problems);
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
  const { config, configProblems, modelProblems } = await preflight(path);
  if (config === null) {
    report([...configProblems, ...modelProblems]);
    return 2;
  }
  // A model that cannot serve is a start-up failure (exit 1), as when the daemon finds it loading.
  if (modelProblems.length > 0) {
    report(modelProblems);
    return 1;
  }
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
    log.info({ signal: 'SIGHUP' }, 'SIGHUP: re-reading the model files');
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
