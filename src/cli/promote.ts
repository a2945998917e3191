/**
 * `sentinel promote` and `sentinel rollback`: the file moves of src/route/promotion.ts for one model of
 * the config. They act on files only; the running daemon's watcher swaps the result in between two
 * batches (zero downtime), and a restarted daemon serves the same model.
 */
import { formatProblem, inspectConfig } from '../config/load.js';
import { promote, rollback } from '../route/promotion.js';
import { previousPathFor } from '../route/route.js';
import { configuredModels } from '../route/routes.js';
import { UsageError, type CommandIO } from './args.js';

export async function promotionCommand(action: 'promote' | 'rollback', configPath: string | undefined, modelName: string | undefined, io: CommandIO): Promise<number> {
  const report = inspectConfig({ path: configPath });
  if (report.config === null) {
    io.err(report.problems.map(formatProblem).join('\n'));
    return 2;
  }
  const models = configuredModels(report.config);
  const names = models.map((m) => m.name).join(', ');
  if (modelName === undefined && models.length > 1) throw new UsageError(`this config has several models (${names}): name one with --model`);
  const target = modelName === undefined ? models[0] : models.find((m) => m.name === modelName);
  if (target === undefined) throw new UsageError(`--model ${modelName}: no such model in the config (models: ${names})`);
  const path = target.model.path;
  try {
    const moved = action === 'promote' ? await promote(path) : await rollback(path);
    const replaced = moved.replaced === null ? '' : action === 'promote' ? ` (replaced ${moved.replaced}, kept as ${previousPathFor(path)})` : ` (replaced ${moved.replaced})`;
    io.out(`model ${target.name}: ${action === 'promote' ? 'promoted' : 'rolled back to'} ${moved.version} at ${path}${replaced}`);
    io.out(target.model.watch ? 'a running daemon swaps it in within seconds (file watch, at the latest at schedule.modelPoll)' : 'model.watch is off: send the daemon SIGHUP to swap it in');
    return 0;
  } catch (err) {
    io.err(`model ${target.name}: cannot ${action}: ${(err as Error).message}`);
    return 1;
  }
}
