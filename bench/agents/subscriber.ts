/** The baseline: the bare mqtt.js subscriber a user would write instead of Sentinel — it only JSON-parses each message. */
import mqtt, { type MqttClient } from 'mqtt';
import { serveAgent, type SubscriberJob, type SubscriberStats } from '../lib/agent.js';

let client: MqttClient;
const stats: SubscriberStats = { received: 0, malformed: 0 };

serveAgent<SubscriberJob, SubscriberStats, SubscriberStats>({
  async prepare(job) {
    client = await mqtt.connectAsync(job.url, { protocolVersion: job.protocolVersion, clientId: job.clientId, clean: true, reconnectPeriod: 0 });
    client.on('message', (_topic, payload) => {
      try {
        JSON.parse(payload.toString());
        stats.received++;
      } catch {
        stats.malformed++;
      }
    });
    await client.subscribeAsync(job.filter, { qos: job.qos });
  },
  go: async () => null,
  stats: () => stats,
  async stop() {
    await client.endAsync();
    return stats;
  },
});
