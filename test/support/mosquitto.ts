/** A real Mosquitto process a fault test owns: started on its own free port, stopped, killed and restarted at will. */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chownSync, copyFileSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, sleep } from './proc.js';

export const MOSQUITTO_BIN = process.env.MOSQUITTO_BIN ?? '/usr/sbin/mosquitto';

export interface MosquittoTls {
  /** PEM files; the helper copies them into the broker's own dir so the `mosquitto` user can read them. */
  caFile: string;
  certFile: string;
  keyFile: string;
  /** Refuse clients without a certificate signed by `caFile` (mutual TLS). Default true. */
  requireCertificate?: boolean;
  useIdentityAsUsername?: boolean;
}

export interface MosquittoOptions {
  /** Default: a free port on 127.0.0.1. */
  port?: number;
  /** Keep sessions and queued messages in `dir` across stop()/restart(). Default true. */
  persistence?: boolean;
  /** Seconds between autosaves; 0 = save only on a graceful exit (SIGTERM) or save(). Default 1. */
  autosaveIntervalSeconds?: number;
  /** A mosquitto_passwd file (copied into `dir`); switches allow_anonymous off. */
  passwordFile?: string;
  tls?: MosquittoTls;
  /** More mosquitto.conf lines, appended after the listener block (so listener-scoped options apply to it). */
  extraConfig?: string[];
}

export interface MosquittoProcess {
  /** mqtt://127.0.0.1:<port>, or mqtts:// with tls. */
  readonly url: string;
  readonly port: number;
  /** Its own directory: mosquitto.conf, mosquitto.log, mosquitto.db, copied certs. */
  readonly dir: string;
  /** The running process id, or null while stopped. */
  pid(): number | null;
  running(): boolean;
  /** SIGTERM: graceful, Mosquitto writes its persistence file before exiting. */
  stop(): Promise<void>;
  /** SIGKILL: a crash; only what the last autosave wrote survives. */
  kill(): Promise<void>;
  /** Start again on the same port with the same config and persistence dir (stops first if running). */
  restart(): Promise<void>;
  /** SIGUSR1: write the persistence file now; resolves once the log says it did. */
  save(): Promise<void>;
  /** The broker's log file so far. */
  log(): string;
  /** Stop (SIGKILL if it hangs) and delete `dir`. */
  dispose(): Promise<void>;
  /**
   * Copies new credential files over the broker's own copies (a rotation): they take effect at the next
   * restart(). Only what the broker was started with can be replaced (the config stays the same).
   */
  replaceCredentials(files: Pick<MosquittoOptions, 'passwordFile' | 'tls'>): void;
}

/** Mosquitto started as root drops to the `mosquitto` user: everything it opens after that must be that user's. */
function brokerUser(): { uid: number; gid: number } | null {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return null;
  const uid = spawnSync('id', ['-u', 'mosquitto'], { encoding: 'utf8' });
  const gid = spawnSync('id', ['-g', 'mosquitto'], { encoding: 'utf8' });
  if (uid.status !== 0 || gid.status !== 0) return null;
  return { uid: Number(uid.stdout.trim()), gid: Number(gid.stdout.trim()) };
}

function chownTree(path: string, owner: { uid: number; gid: number } | null): void {
  if (!owner) return;
  chownSync(path, owner.uid, owner.gid);
  if (statSync(path).isDirectory()) for (const entry of readdirSync(path)) chownTree(join(path, entry), owner);
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

export async function startMosquitto(opts: MosquittoOptions = {}): Promise<MosquittoProcess> {
  if (!existsSync(MOSQUITTO_BIN)) throw new Error(`${MOSQUITTO_BIN} not found: install mosquitto (apt-get install mosquitto) or set MOSQUITTO_BIN`);
  const port = opts.port ?? (await freePort());
  const dir = mkdtempSync(join(tmpdir(), 'sentinel-mosquitto-'));
  const owner = brokerUser();
  const logFile = join(dir, 'mosquitto.log');
  const copy = (file: string, name: string): string => {
    const target = join(dir, name);
    copyFileSync(file, target);
    return target;
  };

  const persistence = opts.persistence ?? true;
  const lines = [
    `listener ${port} 127.0.0.1`,
    // Unlimited queue per persistent client: the default (1000) silently drops QoS 1 for an offline subscriber.
    'max_queued_messages 0',
  ];
  if (opts.tls) {
    lines.push(
      `cafile ${copy(opts.tls.caFile, 'ca.crt')}`,
      `certfile ${copy(opts.tls.certFile, 'server.crt')}`,
      `keyfile ${copy(opts.tls.keyFile, 'server.key')}`,
      `require_certificate ${opts.tls.requireCertificate ?? true}`,
    );
    if (opts.tls.useIdentityAsUsername) lines.push('use_identity_as_username true');
  }
  if (opts.passwordFile) {
    lines.push(`password_file ${copy(opts.passwordFile, 'passwd')}`, 'allow_anonymous false');
  } else {
    lines.push('allow_anonymous true');
  }
  lines.push(
    `persistence ${persistence}`,
    `persistence_location ${dir}/`,
    `autosave_interval ${opts.autosaveIntervalSeconds ?? 1}`,
    `log_dest file ${logFile}`,
    'log_type error',
    'log_type warning',
    'log_type notice',
    'log_type information',
    'connection_messages true',
    'log_timestamp_format %Y-%m-%dT%H:%M:%S',
    ...(opts.extraConfig ?? []),
  );
  const confFile = join(dir, 'mosquitto.conf');
  writeFileSync(confFile, lines.join('\n') + '\n');
  writeFileSync(logFile, '');
  chownTree(dir, owner);

  let child: ChildProcess | null = null;
  let exited: Promise<void> = Promise.resolve();
  let stderr = '';

  const readLog = (): string => (existsSync(logFile) ? readFileSync(logFile, 'utf8') : '');

  const launch = async (): Promise<void> => {
    stderr = '';
    const proc = spawn(MOSQUITTO_BIN, ['-c', confFile], { stdio: ['ignore', 'ignore', 'pipe'] });
    child = proc;
    proc.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    let dead = false;
    exited = new Promise<void>((resolve) =>
      proc.once('exit', () => {
        dead = true;
        if (child === proc) child = null;
        resolve();
      }),
    );
    const deadline = Date.now() + 10_000;
    while (!(await canConnect(port))) {
      if (dead) throw new Error(`mosquitto exited during start-up on port ${port}: ${stderr.trim()}\n${readLog()}`);
      if (Date.now() > deadline) {
        proc.kill('SIGKILL');
        throw new Error(`mosquitto did not accept connections on port ${port} within 10 s\n${readLog()}`);
      }
      await sleep(25);
    }
  };

  const signal = async (sig: NodeJS.Signals, graceMs: number): Promise<void> => {
    const proc = child as ChildProcess | null;
    if (!proc) return;
    const done = exited;
    proc.kill(sig);
    const timedOut = await Promise.race([done.then(() => false), sleep(graceMs).then(() => true)]);
    if (timedOut) {
      proc.kill('SIGKILL');
      await done;
    }
  };

  await launch();

  const mosquitto: MosquittoProcess = {
    url: `${opts.tls ? 'mqtts' : 'mqtt'}://127.0.0.1:${port}`,
    port,
    dir,
    pid: () => (child as ChildProcess | null)?.pid ?? null,
    running: () => child !== null,
    stop: () => signal('SIGTERM', 10_000),
    kill: () => signal('SIGKILL', 10_000),
    restart: async () => {
      await signal('SIGTERM', 10_000);
      await launch();
    },
    save: async () => {
      const proc = child as ChildProcess | null;
      if (!proc) throw new Error('mosquitto is not running');
      // Mosquitto logs "Saving…" before it writes <db>.new and renames it over <db>: a SIGKILL right
      // after the log line can land mid-write and keep the old file, so wait for the rename (a new inode).
      const db = join(dir, PERSISTENCE_FILE);
      const inode = (): number | null => (existsSync(db) ? statSync(db).ino : null);
      const inodeBefore = inode();
      const before = (readLog().match(/Saving in-memory database/g) ?? []).length;
      proc.kill('SIGUSR1');
      const deadline = Date.now() + 5_000;
      while ((readLog().match(/Saving in-memory database/g) ?? []).length <= before || inode() === inodeBefore || existsSync(`${db}.new`)) {
        if (Date.now() > deadline) throw new Error(`mosquitto did not finish a save within 5 s\n${readLog()}`);
        await sleep(20);
      }
    },
    log: readLog,
    dispose: async () => {
      await signal('SIGTERM', 5_000);
      rmSync(dir, { recursive: true, force: true });
    },
    replaceCredentials: (files) => {
      if ((files.passwordFile && !opts.passwordFile) || (files.tls && !opts.tls)) throw new Error('replaceCredentials: the broker was started without these');
      if (files.passwordFile) copy(files.passwordFile, 'passwd');
      if (files.tls) {
        copy(files.tls.caFile, 'ca.crt');
        copy(files.tls.certFile, 'server.crt');
        copy(files.tls.keyFile, 'server.key');
      }
      chownTree(dir, owner);
    },
  };
  return mosquitto;
}

/** The file Mosquitto persists to inside `dir`. */
export const PERSISTENCE_FILE = 'mosquitto.db';
