/**
 * The observability kit against the real daemon: promtool on the alerting rules and on a live
 * /metrics scrape, and every metric the rules and the Grafana dashboard query checked against it.
 */
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { prometheusRuleSchema } from '../support/crd-schemas.js';
import { findObject, hasTool, kustomize, metricNames, repoRoot, run, scrapeLiveDaemon, type LiveMetrics } from '../support/deploy.js';

const promtool = hasTool('promtool');
const kubectl = hasTool('kubectl');
const rule = prometheusRuleSchema.parse(parseYaml(readFileSync(join(repoRoot, 'k8s/monitoring/prometheus-rules.yaml'), 'utf8')));
const dashboardText = readFileSync(join(repoRoot, 'k8s/monitoring/grafana-dashboard.json'), 'utf8');

interface Target {
  refId: string;
  expr: string;
  datasource?: { type: string; uid: string };
}
interface Panel {
  id: number;
  type: string;
  title: string;
  gridPos: { x: number; y: number; w: number; h: number };
  datasource?: { type: string; uid: string };
  targets?: Target[];
}
interface Dashboard {
  uid: string;
  title: string;
  schemaVersion: number;
  panels: Panel[];
  templating: { list: Array<{ name: string; type: string; query: unknown }> };
  time: { from: string; to: string };
}
const dashboard = JSON.parse(dashboardText) as Dashboard;
const queryPanels = dashboard.panels.filter((p) => p.type !== 'row');
const prometheusTargets = queryPanels.flatMap((p) =>
  (p.targets ?? []).filter((t) => (t.datasource ?? p.datasource)?.type === 'prometheus').map((t) => ({ panel: p.title, expr: t.expr })),
);

/** Series the daemon does not export but the kit may read: Prometheus' own scrape health. */
const fromPrometheus = new Set(['up']);

/** prom-client default metrics that break promtool's "_total only on counters" rule; kept for compatibility with existing Node.js dashboards. */
const knownPromClientWarnings = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'];

let live: LiveMetrics;
beforeAll(async () => {
  live = await scrapeLiveDaemon();
});

describe.skipIf(!promtool)('promtool', () => {
  let dir = '';
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'sentinel-promtool-'));
    writeFileSync(join(dir, 'rules.yaml'), stringifyYaml(rule.spec));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('check rules: the PrometheusRule spec is a valid rule file', () => {
    const result = run('promtool', ['check', 'rules', join(dir, 'rules.yaml')]);
    expect(result.status, result.stdout + result.stderr).toBe(0);
    expect(result.stdout).toContain(`SUCCESS: ${rule.spec.groups.flatMap((g) => g.rules).length} rules found`);
  });

  it('test rules: each alert fires on the series it is about, with its annotations rendered', () => {
    copyFileSync(join(repoRoot, 'test/deploy/prometheus-rules.tests.yaml'), join(dir, 'tests.yaml'));
    const result = run('promtool', ['test', 'rules', join(dir, 'tests.yaml')]);
    expect(result.status, result.stdout + result.stderr).toBe(0);
  });

  it('check metrics on a live scrape: no warning for any sentinel_ metric, only the known prom-client ones otherwise', () => {
    const result = run('promtool', ['check', 'metrics'], live.text);
    const warnings = (result.stdout + result.stderr).split('\n').filter((l) => l.trim() !== '');
    expect(warnings.filter((w) => w.startsWith('sentinel_'))).toEqual([]);
    const others = warnings.map((w) => w.split(' ')[0]);
    expect(others.every((name) => knownPromClientWarnings.includes(name as string)), warnings.join('\n')).toBe(true);
  });
});

/** The job label Prometheus gives the scraped series: the ServiceMonitor's jobLabel, read from the Service. */
const job = 'sentinel';

describe.skipIf(!kubectl)('job label', () => {
  it(`is "${job}", from the Service label the ServiceMonitor names, which a namePrefix leaves alone`, () => {
    const objects = kustomize('k8s/overlays/fleet');
    const monitor = findObject<{ spec: { jobLabel?: string } }>(objects, 'ServiceMonitor');
    const service = findObject(objects, 'Service');
    expect(service.metadata.labels?.[monitor.spec.jobLabel as string]).toBe(job);
  });
});

describe('alerting rules', () => {
  const alerts = rule.spec.groups.flatMap((g) => g.rules);

  it('cover down, broker (fleet and node), queue, drops, latency, failures, the outbox, models, CPU fallback and stale streams', () => {
    expect(alerts.map((a) => a.alert)).toEqual(
      expect.arrayContaining([
        'SentinelDown',
        'SentinelBrokerUnreachable',
        'SentinelBrokerDisconnected',
        'SentinelQueueSaturated',
        'SentinelReadingsDropped',
        'SentinelInferenceLatencyHigh',
        'SentinelInferenceFailing',
        'SentinelAlertPublishFailing',
        'SentinelOutboxBacklog',
        'SentinelAlertsLost',
        'SentinelModelVersionsDiverge',
        'SentinelCpuFallbackOnGpuNode',
        'SentinelStreamsStale',
      ]),
    );
    expect(new Set(alerts.map((a) => a.alert)).size).toBe(alerts.length);
  });

  it('each have a promtool case where they fire and one where they stay silent', () => {
    const tests = parseYaml(readFileSync(join(repoRoot, 'test/deploy/prometheus-rules.tests.yaml'), 'utf8')) as {
      tests: Array<{ alert_rule_test: Array<{ alertname: string; exp_alerts: unknown[] }> }>;
    };
    const cases = tests.tests.flatMap((t) => t.alert_rule_test);
    for (const { alert } of alerts) {
      expect(cases.some((c) => c.alertname === alert && c.exp_alerts.length > 0), `${alert} fires`).toBe(true);
      expect(cases.some((c) => c.alertname === alert && c.exp_alerts.length === 0), `${alert} stays silent`).toBe(true);
    }
    expect(cases.filter((c) => !alerts.some((a) => a.alert === c.alertname))).toEqual([]);
  });

  it('wait before paging on failures that a retry may clear', () => {
    for (const name of ['SentinelInferenceFailing', 'SentinelAlertPublishFailing', 'SentinelBrokerUnreachable', 'SentinelDown']) {
      const found = alerts.find((a) => a.alert === name);
      expect(found?.labels.severity, name).toBe('critical');
      expect(found?.for, name).toMatch(/^\d+m$/);
    }
    // One critical alert for a broker outage, not one per node: the fleet rule aggregates every label away.
    expect(alerts.find((a) => a.alert === 'SentinelBrokerUnreachable')?.expr).toMatch(/^avg\(/);
    expect(alerts.find((a) => a.alert === 'SentinelBrokerDisconnected')?.labels.severity).toBe('warning');
  });

  it('link a runbook section of their own in docs/runbook.md, and the runbook has no section without its alert', () => {
    const runbook = readFileSync(join(repoRoot, 'docs/runbook.md'), 'utf8');
    const sections = [...runbook.matchAll(/^## (\S+)$/gm)].map((m) => m[1] as string);
    for (const alert of alerts) {
      const url = new URL(alert.annotations.runbook_url);
      expect(url.pathname.endsWith('/docs/runbook.md'), alert.alert).toBe(true);
      // GitHub's anchor for a heading that is one word: the word in lower case.
      expect(url.hash, alert.alert).toBe(`#${alert.alert.toLowerCase()}`);
    }
    expect(sections.sort()).toEqual(alerts.map((a) => a.alert).sort());
  });

  it('read only metrics the daemon exports', () => {
    for (const alert of alerts) {
      const names = metricNames(alert.expr);
      expect(names.length, alert.alert).toBeGreaterThan(0);
      for (const name of names) expect(live.names.has(name) || fromPrometheus.has(name), `${alert.alert}: ${name}`).toBe(true);
    }
  });

  it('key on the labels the ServiceMonitor attaches', () => {
    for (const alert of alerts) {
      const jobs = [...alert.expr.matchAll(/\bjob="([^"]*)"/g)].map((m) => m[1]);
      expect(jobs.length, alert.alert).toBeGreaterThan(0);
      expect(new Set(jobs), alert.alert).toEqual(new Set([job]));
    }
    const fallback = alerts.find((a) => a.alert === 'SentinelCpuFallbackOnGpuNode');
    expect(fallback?.expr).toContain('accelerator="gpu"');
  });
});

describe('Grafana dashboard', () => {
  it('has the shape Grafana loads: uid, schemaVersion, unique panel ids, a 24-column grid without overlaps', () => {
    expect(dashboard.uid).toMatch(/^[\w-]{1,40}$/);
    expect(dashboard.title).toBe('Sentinel');
    expect(dashboard.schemaVersion).toBeGreaterThanOrEqual(36);
    expect(dashboard.time).toEqual({ from: expect.any(String), to: 'now' });
    const ids = dashboard.panels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    const known = new Set(['row', 'timeseries', 'stat', 'table', 'gauge', 'bargauge', 'text', 'logs']);
    const taken = new Set<string>();
    for (const panel of dashboard.panels) {
      expect(known.has(panel.type), `${panel.title}: ${panel.type}`).toBe(true);
      const { x, y, w, h } = panel.gridPos;
      expect(x >= 0 && w > 0 && x + w <= 24 && h > 0 && y >= 0, panel.title).toBe(true);
      for (let cx = x; cx < x + w; cx++) {
        for (let cy = y; cy < y + h; cy++) {
          expect(taken.has(`${cx},${cy}`), `${panel.title} overlaps at ${cx},${cy}`).toBe(false);
          taken.add(`${cx},${cy}`);
        }
      }
    }
  });

  it('every query panel uses a templated datasource and unique refIds; every variable it uses is defined', () => {
    const variables = new Set(dashboard.templating.list.map((v) => v.name));
    for (const panel of queryPanels) {
      expect(panel.targets?.length, panel.title).toBeGreaterThan(0);
      expect(panel.datasource?.uid, panel.title).toMatch(/^\$\{\w+\}$/);
      const refIds = (panel.targets ?? []).map((t) => t.refId);
      expect(new Set(refIds).size, panel.title).toBe(refIds.length);
      for (const target of panel.targets ?? []) {
        for (const match of target.expr.matchAll(/\$(\w+)|\$\{(\w+)\}/g)) {
          const name = (match[1] ?? match[2]) as string;
          if (!name.startsWith('__')) expect(variables.has(name), `${panel.title}: $${name}`).toBe(true);
        }
      }
      expect(variables.has((panel.datasource?.uid as string).slice(2, -1))).toBe(true);
    }
  });

  it('every Prometheus query reads only metrics the live daemon exports', () => {
    expect(prometheusTargets.length).toBeGreaterThan(15);
    for (const { panel, expr } of prometheusTargets) {
      const names = metricNames(expr);
      expect(names.length, `${panel}: ${expr}`).toBeGreaterThan(0);
      for (const name of names) expect(live.names.has(name) || fromPrometheus.has(name), `${panel}: ${name}`).toBe(true);
    }
  });

  it('selects the job the rules select', () => {
    for (const { panel, expr } of prometheusTargets) {
      for (const match of expr.matchAll(/\bjob="([^"]*)"/g)) expect(match[1], panel).toBe(job);
    }
    for (const variable of dashboard.templating.list) expect(JSON.stringify(variable.query)).not.toMatch(/job="(?!sentinel")/);
  });

  it('shows throughput, drops, queue depth, batch size, inference and end-to-end latency, alerts, their outbox, model and provider', () => {
    const used = new Set(prometheusTargets.flatMap((t) => metricNames(t.expr)));
    for (const name of [
      'sentinel_outbox_pending',
      'sentinel_outbox_dropped_total',
      'sentinel_alerts_undeliverable_total',
      'sentinel_messages_received_total',
      'sentinel_readings_dropped_total',
      'sentinel_queue_depth',
      'sentinel_batch_size_bucket',
      'sentinel_inference_duration_seconds_bucket',
      'sentinel_ingest_to_decision_seconds_bucket',
      'sentinel_alerts_total',
      'sentinel_model_info',
    ]) {
      expect(used.has(name), name).toBe(true);
    }
    const modelPanel = queryPanels.find((p) => p.targets?.some((t) => t.expr.startsWith('sentinel_model_info')));
    expect(modelPanel?.type).toBe('table');
  });

  it.skipIf(!kubectl)('ships unchanged in the ConfigMap the Grafana sidecar picks up', () => {
    const objects = kustomize('k8s/monitoring');
    const configMap = findObject<{ metadata: { labels?: Record<string, string> }; data: Record<string, string> }>(objects, 'ConfigMap', 'sentinel-grafana-dashboard');
    expect(configMap.metadata.labels?.grafana_dashboard).toBe('1');
    expect(JSON.parse(configMap.data['sentinel.json'] as string)).toEqual(dashboard);
    // kubectl apply keeps a copy in an annotation limited to 256 KiB.
    expect(Buffer.byteLength(dashboardText)).toBeLessThan(200 * 1024);
  });
});

describe('metricNames', () => {
  it('finds metric names, not functions, keywords, labels or template variables', () => {
    expect(
      metricNames(
        'histogram_quantile(0.99, sum by (node, le) (rate(sentinel_x_bucket{job="a", node=~"$node"}[$__rate_interval]))) > 0.25 and on (node) up == 1',
      ).sort(),
    ).toEqual(['sentinel_x_bucket', 'up']);
    expect(metricNames('sum(rate(a_total[5m])) / sum(rate(b_total[5m])) > 1e3')).toEqual(['a_total', 'b_total']);
  });
});
