/** The cron stage: periodic jobs (heartbeat, summary, sweep, model poll), each guarded so a failing job is counted, never fatal. */
import cron, { type ScheduledTask } from 'node-cron';
import type { Stage } from './stage.js';

export interface Job {
  name: string;
  /** A node-cron expression (seconds field first). */
  cron: string;
  run(): unknown;
}

export class Scheduler implements Stage {
  readonly name = 'scheduler';
  private tasks: ScheduledTask[] = [];

  constructor(
    private readonly jobs: readonly Job[],
    /** A job threw or rejected. */
    private readonly onError: (job: string, err: unknown) => void,
  ) {}

  async start(): Promise<void> {
    for (const job of this.jobs) {
      const guarded = async (): Promise<void> => {
        try {
          await job.run();
        } catch (err) {
          this.onError(job.name, err);
        }
      };
      this.tasks.push(cron.schedule(job.cron, guarded, { name: job.name, noOverlap: true }));
    }
  }

  async stop(): Promise<void> {
    for (const task of this.tasks) await task.stop();
    this.tasks = [];
  }
}
