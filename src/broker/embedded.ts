/** The embedded broker: an in-process aedes (MQTT 3.1.1) so `npm start` works with no broker installed. */
import { createServer, type Server } from 'node:net';
import type { AddressInfo } from 'node:net';
import { Aedes } from 'aedes';

export interface EmbeddedBroker {
  readonly url: string;
  readonly port: number;
  /** An in-process subscription: `deliver` gets each matching message and calls `done` once it is taken. */
  subscribe(filter: string, deliver: (packet: { topic: string; payload: Uint8Array | string; qos: number }, done: () => void) => void): Promise<void>;
  stop(): Promise<void>;
}

export async function startEmbeddedBroker(host: string, port: number): Promise<EmbeddedBroker> {
  const aedes = await Aedes.createBroker({
    // aedes 1.x drops the subscriber's connection when it routes a topic with an empty level
    // ("a//b"): refuse such publishes at the door instead (only the publisher is disconnected).
    authorizePublish: (_client, packet, callback) => {
      callback(packet.topic.split('/').some((level) => level.length === 0) ? new Error('empty topic level') : null);
    },
  });
  const server: Server = createServer(aedes.handle);
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => {
      void aedes.close();
      reject(
        err.code === 'EADDRINUSE'
          ? new Error(`embedded broker: ${host}:${port} is already in use — fix: set broker.url to the broker listening there, or pick another broker.embedded.port`)
          : err,
      );
    });
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const actual = (server.address() as AddressInfo).port;
  return {
    url: `mqtt://${host.includes(':') ? `[${host}]` : host}:${actual}`,
    port: actual,
    subscribe(filter, deliver) {
      return new Promise<void>((resolve, reject) => {
        aedes.subscribe(filter, (packet, done) => deliver(packet, done), (err?: Error) => (err ? reject(err) : resolve()));
      });
    },
    async stop() {
      await new Promise<void>((resolve) => aedes.close(() => resolve()));
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
