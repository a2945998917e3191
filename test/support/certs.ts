/**
 * Test PKI made with openssl: a CA, a broker certificate for 127.0.0.1/localhost, a client, and a rogue
 * client from another CA; and a Secret volume laid out as the kubelet writes one, to rotate them in.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface TestPki {
  dir: string;
  caFile: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
  /** Signed by a second CA the broker does not trust. */
  rogueCert: string;
  rogueKey: string;
}

function openssl(dir: string, args: string[]): void {
  const result = spawnSync('openssl', args, { cwd: dir, encoding: 'utf8' });
  if (result.error) throw new Error(`openssl not runnable: ${result.error.message}`);
  if (result.status !== 0) throw new Error(`openssl ${args.join(' ')} failed: ${result.stderr}`);
}

function makeCa(dir: string, name: string): void {
  openssl(dir, ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.crt`, '-days', '2', '-subj', `/CN=${name}`]);
}

function makeLeaf(dir: string, name: string, ca: string, cn: string, ext: string): void {
  writeFileSync(join(dir, `${name}.ext`), ext);
  openssl(dir, ['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`]);
  openssl(dir, [
    'x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.crt`, '-CAkey', `${ca}.key`, '-CAcreateserial',
    '-out', `${name}.crt`, '-days', '2', '-sha256', '-extfile', `${name}.ext`,
  ]);
}

export function makePki(): TestPki {
  const dir = mkdtempSync(join(tmpdir(), 'sentinel-pki-'));
  makeCa(dir, 'ca');
  makeCa(dir, 'rogue-ca');
  makeLeaf(dir, 'server', 'ca', '127.0.0.1', 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n');
  makeLeaf(dir, 'client', 'ca', 'sentinel-test', 'extendedKeyUsage=clientAuth\n');
  makeLeaf(dir, 'rogue', 'rogue-ca', 'sentinel-test', 'extendedKeyUsage=clientAuth\n');
  const f = (name: string) => join(dir, name);
  return {
    dir,
    caFile: f('ca.crt'),
    serverCert: f('server.crt'),
    serverKey: f('server.key'),
    clientCert: f('client.crt'),
    clientKey: f('client.key'),
    rogueCert: f('rogue.crt'),
    rogueKey: f('rogue.key'),
  };
}

export interface SecretVolume {
  dir: string;
  /** The path a pod reads a key at: `<dir>/<name>`, a symlink to `..data/<name>`. */
  path(name: string): string;
  /** Replaces every key at once, as the kubelet does: a new hidden dir, then `..data` swapped to it by rename. */
  update(files: Record<string, string>): void;
  /** Removes `..data`, so every key dangles (what a reader sees if the volume is broken mid-update). */
  break(): void;
}

/**
 * A directory laid out like a mounted Secret: each key is a symlink through `..data` into a hidden,
 * timestamped dir. An update writes a new dir and renames a new `..data` over the old one, so the key's
 * own symlink never changes: an fs.watch on it sees nothing, a read by path gets the new content.
 */
export function secretVolume(files: Record<string, string>): SecretVolume {
  const dir = mkdtempSync(join(tmpdir(), 'sentinel-secret-'));
  let generation = 0;
  let current: string | null = null;
  const update = (next: Record<string, string>): void => {
    const name = `..${Date.now()}_${generation++}`;
    mkdirSync(join(dir, name));
    for (const [key, text] of Object.entries(next)) writeFileSync(join(dir, name, key), text, { mode: 0o600 });
    symlinkSync(name, join(dir, '..data_tmp'));
    renameSync(join(dir, '..data_tmp'), join(dir, '..data'));
    for (const key of Object.keys(next)) {
      try {
        symlinkSync(join('..data', key), join(dir, key));
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
    }
    if (current !== null) rmSync(join(dir, current), { recursive: true, force: true });
    current = name;
  };
  update(files);
  return { dir, path: (name) => join(dir, name), update, break: () => rmSync(join(dir, '..data'), { force: true }) };
}
