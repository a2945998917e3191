/**
 * The k8s overlays as `kubectl kustomize` renders them: every object validated offline against the
 * Kubernetes schemas (kubernetes-models; the Prometheus Operator kinds against zod schemas here), the
 * DaemonSet against the deployment rules, and the daemon's effective config computed by its own loader.
 */
import { Namespace, Service, ServiceAccount, ConfigMap } from 'kubernetes-models/v1';
import { DaemonSet } from 'kubernetes-models/apps/v1';
import { PriorityClass } from 'kubernetes-models/scheduling.k8s.io/v1';
import type { IContainer } from 'kubernetes-models/v1/Container';
import type { IPodSpec } from 'kubernetes-models/v1/PodSpec';
import type { IToleration } from 'kubernetes-models/v1/Toleration';
import { parse as parseYaml } from 'yaml';
import { describe, expect, it } from 'vitest';
import { applyEnv, validateConfig } from '../../src/config/load.js';
import type { Config } from '../../src/config/schema.js';
import { prometheusRuleSchema, serviceMonitorSchema } from '../support/crd-schemas.js';
import { findObject, hasTool, kustomize, type K8sObject } from '../support/deploy.js';

const overlays = ['cpu', 'gpu'] as const;
type Overlay = (typeof overlays)[number];
const kubectl = hasTool('kubectl');
const rendered = new Map<Overlay, K8sObject[]>(kubectl ? overlays.map((o) => [o, kustomize(`k8s/overlays/${o}`)]) : []);

function objects(overlay: Overlay): K8sObject[] {
  return rendered.get(overlay) as K8sObject[];
}

/** Offline schema validation for every kind the overlays render; an unknown kind fails. */
const validators: Record<string, (o: K8sObject) => void> = {
  'v1/Namespace': (o) => new Namespace(o as never).validate(),
  'v1/ServiceAccount': (o) => new ServiceAccount(o as never).validate(),
  'v1/ConfigMap': (o) => new ConfigMap(o as never).validate(),
  'v1/Service': (o) => new Service(o as never).validate(),
  'apps/v1/DaemonSet': (o) => new DaemonSet(o as never).validate(),
  'scheduling.k8s.io/v1/PriorityClass': (o) => new PriorityClass(o as never).validate(),
  'monitoring.coreos.com/v1/ServiceMonitor': (o) => void serviceMonitorSchema.parse(o),
  'monitoring.coreos.com/v1/PrometheusRule': (o) => void prometheusRuleSchema.parse(o),
};

interface DaemonSetObject extends K8sObject {
  spec: {
    selector: { matchLabels: Record<string, string> };
    updateStrategy: { type: string; rollingUpdate?: { maxUnavailable?: number | string; maxSurge?: number | string } };
    template: { metadata: { labels: Record<string, string> }; spec: IPodSpec };
  };
}

function daemonSet(overlay: Overlay): DaemonSetObject {
  return findObject<DaemonSetObject>(objects(overlay), 'DaemonSet', 'sentinel');
}

function podSpec(overlay: Overlay): IPodSpec {
  return daemonSet(overlay).spec.template.spec;
}

function mainContainer(overlay: Overlay): IContainer {
  const container = podSpec(overlay).containers.find((c) => c.name === 'sentinel');
  if (!container) throw new Error('no container named sentinel');
  return container;
}

function allContainers(spec: IPodSpec): IContainer[] {
  return [...(spec.initContainers ?? []), ...spec.containers];
}

/** Kubernetes' rule: does this toleration tolerate the taint key[=value]:effect? */
function tolerates(t: IToleration, taint: { key: string; value?: string; effect: string }): boolean {
  if (t.effect && t.effect !== taint.effect) return false;
  if (t.key === undefined || t.key === '') return t.operator === 'Exists';
  if (t.key !== taint.key) return false;
  return t.operator === 'Exists' || (t.value ?? '') === (taint.value ?? '');
}

/** Port number of a probe or Service targetPort given by name or number. */
function portNumber(container: IContainer, port: number | string): number {
  if (typeof port === 'number') return port;
  const found = container.ports?.find((p) => p.name === port);
  if (!found) throw new Error(`container ${container.name} has no port named ${port}`);
  return found.containerPort;
}

function mountPath(container: IContainer, volume: string): string {
  const mount = container.volumeMounts?.find((m) => m.name === volume);
  if (!mount) throw new Error(`container ${container.name} does not mount ${volume}`);
  return mount.mountPath;
}

const stand = { nodeName: 'edge-node-7', username: 'sentinel-user' };

/**
 * The config the daemon would run with in this pod: the mounted ConfigMap's file plus the
 * container's environment, through src/config/load.ts. Downward-API and Secret values are stand-ins.
 */
function effectiveConfig(overlay: Overlay): { config: Config; env: Record<string, string> } {
  const container = mainContainer(overlay);
  const env: Record<string, string> = {};
  for (const e of container.env ?? []) {
    if (e.value !== undefined) env[e.name] = e.value;
    else if (e.valueFrom?.fieldRef?.fieldPath === 'spec.nodeName') env[e.name] = stand.nodeName;
    else if (e.valueFrom?.secretKeyRef?.key === 'username') env[e.name] = stand.username;
    else throw new Error(`env ${e.name}: no stand-in for ${JSON.stringify(e.valueFrom)}`);
  }
  const configPath = env.SENTINEL_CONFIG as string;
  const configMount = mountPath(container, 'config');
  expect(configPath.startsWith(`${configMount}/`), 'SENTINEL_CONFIG lies in the config mount').toBe(true);
  const volume = podSpec(overlay).volumes?.find((v) => v.name === 'config');
  const configMap = findObject<K8sObject & { data: Record<string, string> }>(objects(overlay), 'ConfigMap', volume?.configMap?.name);
  const file = configMap.data[configPath.slice(configMount.length + 1)];
  expect(file, `ConfigMap ${configMap.metadata.name} has the key SENTINEL_CONFIG names`).toBeDefined();
  const raw = (parseYaml(file as string) ?? {}) as Record<string, unknown>;
  return { config: validateConfig(applyEnv(raw, env), `${overlay}:${configPath}`), env };
}

describe.skipIf(!kubectl).each(overlays)('k8s/overlays/%s', (overlay) => {
  it('renders objects that all validate against their schemas', () => {
    const kinds = objects(overlay).map((o) => `${o.kind}/${o.metadata.name}`);
    // The config map's hash suffix makes every config change roll the DaemonSet.
    expect(kinds.filter((k) => /^ConfigMap\/sentinel-config-[a-z0-9]{10}$/.test(k))).toHaveLength(1);
    expect(kinds.filter((k) => !k.startsWith('ConfigMap/sentinel-config-')).sort()).toEqual([
      'ConfigMap/sentinel-grafana-dashboard',
      'DaemonSet/sentinel',
      'Namespace/sentinel',
      'PriorityClass/sentinel-edge',
      'PrometheusRule/sentinel',
      'Service/sentinel-metrics',
      'ServiceAccount/sentinel',
      'ServiceMonitor/sentinel',
    ]);
    for (const o of objects(overlay)) {
      const validate = validators[`${o.apiVersion}/${o.kind}`];
      expect(validate, `a validator for ${o.apiVersion} ${o.kind}`).toBeDefined();
      (validate as (o: K8sObject) => void)(o);
      if (o.kind !== 'Namespace' && o.kind !== 'PriorityClass') expect(o.metadata.namespace, o.metadata.name).toBe('sentinel');
      expect(o.metadata.labels?.['app.kubernetes.io/name'], `${o.kind} label`).toBe('sentinel');
    }
  });

  it('ships references to the broker Secrets, never a Secret', () => {
    expect(objects(overlay).filter((o) => o.kind === 'Secret')).toEqual([]);
    const secrets = new Set([
      ...(podSpec(overlay).volumes ?? []).flatMap((v) => (v.secret?.secretName ? [v.secret.secretName] : [])),
      ...(mainContainer(overlay).env ?? []).flatMap((e) => (e.valueFrom?.secretKeyRef?.name ? [e.valueFrom.secretKeyRef.name] : [])),
    ]);
    expect([...secrets].sort()).toEqual(['sentinel-broker', 'sentinel-broker-tls']);
  });

  it('runs only on edge nodes, tolerating their taint', () => {
    const spec = podSpec(overlay);
    const edgeTaint = { key: 'node-role.kubernetes.io/edge', effect: 'NoSchedule' };
    expect((spec.tolerations ?? []).some((t) => tolerates(t, edgeTaint))).toBe(true);
    // Tolerating everything would also put Sentinel on control-plane and other tainted nodes.
    expect((spec.tolerations ?? []).some((t) => tolerates(t, { key: 'node-role.kubernetes.io/control-plane', effect: 'NoSchedule' }))).toBe(false);
    const terms = spec.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms ?? [];
    expect(terms.length).toBeGreaterThan(0);
    for (const term of terms) {
      expect(term.matchExpressions).toContainEqual({ key: 'node-role.kubernetes.io/edge', operator: 'Exists' });
    }
  });

  it('probes: liveness /healthz, readiness /readyz, a startup probe covering model warm-up, all on the metrics port', () => {
    const container = mainContainer(overlay);
    const { config } = effectiveConfig(overlay);
    const { livenessProbe, readinessProbe, startupProbe } = container;
    expect(livenessProbe?.httpGet?.path).toBe('/healthz');
    expect(readinessProbe?.httpGet?.path).toBe('/readyz');
    expect(startupProbe?.httpGet?.path).toBe('/readyz');
    for (const probe of [livenessProbe, readinessProbe, startupProbe]) {
      expect(portNumber(container, probe?.httpGet?.port as number | string)).toBe(config.http.port);
    }
    const budget = (startupProbe?.periodSeconds ?? 10) * (startupProbe?.failureThreshold ?? 3);
    expect(budget).toBeGreaterThanOrEqual(120);
    expect(container.ports?.find((p) => p.name === 'metrics')?.containerPort).toBe(9464);
  });

  it('the daemon config it would run with: node-local topics, mounted files, grace period above the drain budget', () => {
    const { config, env } = effectiveConfig(overlay);
    const container = mainContainer(overlay);
    const spec = podSpec(overlay);
    expect((container.env ?? []).find((e) => e.name === 'SENTINEL_NODE_NAME')?.valueFrom?.fieldRef?.fieldPath).toBe('spec.nodeName');
    expect(config.nodeName).toBe(stand.nodeName);
    expect(config.broker.clientId).toContain(stand.nodeName);
    for (const sub of config.subscriptions) expect(sub.topic.split('/')).toContain(stand.nodeName);
    expect(config.broker.url).toMatch(/^mqtts:\/\//);
    expect(config.broker.username).toBe(stand.username);
    expect(config.broker.password).toBeUndefined();
    const credentials = spec.volumes?.find((v) => v.name === 'broker-credentials')?.secret;
    expect(config.broker.passwordFile).toBe(`${mountPath(container, 'broker-credentials')}/${credentials?.items?.[0]?.path}`);
    expect(credentials?.items?.[0]?.key).toBe('password');
    expect(config.broker.tls?.caFile?.startsWith(`${mountPath(container, 'broker-tls')}/`)).toBe(true);
    expect(config.model.path.startsWith(`${mountPath(container, 'models')}/`)).toBe(true);
    expect(config.model.executionProviders).toEqual(overlay === 'gpu' ? ['cuda', 'cpu'] : ['cpu']);
    expect((spec.terminationGracePeriodSeconds ?? 30) * 1000).toBeGreaterThanOrEqual(config.shutdown.graceMs + 10_000);
    expect(Object.keys(env).filter((k) => k.startsWith('SENTINEL_') && k.includes('PASSWORD') && !k.endsWith('_FILE'))).toEqual([]);
  });

  it('meets the restricted Pod Security Standard: non-root, read-only root, no capabilities, RuntimeDefault seccomp', () => {
    const spec = podSpec(overlay);
    const pod = spec.securityContext ?? {};
    expect(pod.runAsNonRoot).toBe(true);
    expect(pod.runAsUser).toBeGreaterThan(0);
    expect(pod.seccompProfile?.type).toBe('RuntimeDefault');
    expect(spec.hostNetwork ?? false).toBe(false);
    expect(spec.hostPID ?? false).toBe(false);
    expect(spec.hostIPC ?? false).toBe(false);
    const allowedVolumes = new Set(['configMap', 'csi', 'downwardAPI', 'emptyDir', 'ephemeral', 'persistentVolumeClaim', 'projected', 'secret']);
    for (const volume of spec.volumes ?? []) {
      for (const type of Object.keys(volume).filter((k) => k !== 'name')) expect(allowedVolumes.has(type), `${volume.name}: ${type}`).toBe(true);
    }
    for (const container of allContainers(spec)) {
      const sc = container.securityContext ?? {};
      expect(sc.allowPrivilegeEscalation, container.name).toBe(false);
      expect(sc.readOnlyRootFilesystem, container.name).toBe(true);
      expect(sc.privileged ?? false).toBe(false);
      expect(sc.capabilities?.drop).toEqual(['ALL']);
      expect(sc.capabilities?.add ?? []).toEqual([]);
      expect(sc.runAsUser ?? pod.runAsUser).not.toBe(0);
      expect((container.ports ?? []).every((p) => p.hostPort === undefined)).toBe(true);
    }
  });

  it('no API token, no service-link variables, a priority class that exists, rolling updates one node at a time', () => {
    const spec = podSpec(overlay);
    const ds = daemonSet(overlay);
    expect(spec.automountServiceAccountToken).toBe(false);
    const sa = findObject<K8sObject & { automountServiceAccountToken?: boolean }>(objects(overlay), 'ServiceAccount', spec.serviceAccountName);
    expect(sa.automountServiceAccountToken).toBe(false);
    expect(spec.enableServiceLinks).toBe(false);
    findObject(objects(overlay), 'PriorityClass', spec.priorityClassName);
    expect(ds.spec.updateStrategy.type).toBe('RollingUpdate');
    expect(ds.spec.updateStrategy.rollingUpdate?.maxUnavailable).toBeDefined();
    // Two pods on one node would share the MQTT client id.
    expect(ds.spec.updateStrategy.rollingUpdate?.maxSurge ?? 0).toBe(0);
    for (const [key, value] of Object.entries(ds.spec.selector.matchLabels)) expect(ds.spec.template.metadata.labels[key]).toBe(value);
  });

  it('requests and limits resources; models read-only, outbox writable at /var/lib/sentinel', () => {
    const spec = podSpec(overlay);
    for (const container of allContainers(spec)) {
      for (const kind of ['requests', 'limits'] as const) {
        expect(container.resources?.[kind]?.cpu, `${container.name} ${kind}.cpu`).toBeDefined();
        expect(container.resources?.[kind]?.memory, `${container.name} ${kind}.memory`).toBeDefined();
      }
    }
    const main = mainContainer(overlay);
    const writable = (main.volumeMounts ?? []).filter((m) => m.readOnly !== true).map((m) => m.mountPath);
    expect(writable.sort()).toEqual(['/tmp', '/var/lib/sentinel']);
    const outbox = spec.volumes?.find((v) => v.name === (main.volumeMounts ?? []).find((m) => m.mountPath === '/var/lib/sentinel')?.name);
    expect(outbox?.emptyDir).toBeDefined();
    expect((main.volumeMounts ?? []).find((m) => m.name === 'models')?.readOnly).toBe(true);
    // The init container fills the models volume the daemon then reads.
    const init = spec.initContainers?.find((c) => c.name === 'models');
    expect(init?.volumeMounts?.find((m) => m.name === 'models')?.readOnly ?? false).toBe(false);
    expect(init?.command?.join(' ')).toContain(mountPath(init as IContainer, 'models'));
  });

  it('uses pinned images, never latest', () => {
    const images = allContainers(podSpec(overlay)).map((c) => c.image as string);
    for (const image of images) {
      expect(image).toMatch(/^[\w.-]+(:\d+)?\/[\w./-]+(:[\w.-]+|@sha256:[0-9a-f]{64})$/);
      expect(image).not.toMatch(/:latest$/);
    }
    expect(new Set(images).size).toBe(1);
    expect(images[0]).toMatch(overlay === 'gpu' ? /-gpu$/ : /:\d+\.\d+\.\d+$/);
  });

  it('exposes metrics through a headless Service the ServiceMonitor selects', () => {
    const service = findObject<K8sObject & { spec: { clusterIP: string; selector: Record<string, string>; ports: Array<{ name: string; port: number; targetPort: string | number }> } }>(
      objects(overlay),
      'Service',
      'sentinel-metrics',
    );
    const ds = daemonSet(overlay);
    expect(service.spec.clusterIP).toBe('None');
    for (const [key, value] of Object.entries(service.spec.selector)) expect(ds.spec.template.metadata.labels[key]).toBe(value);
    const port = service.spec.ports.find((p) => p.name === 'metrics');
    expect(portNumber(mainContainer(overlay), port?.targetPort as string)).toBe(9464);
    const monitor = serviceMonitorSchema.parse(findObject(objects(overlay), 'ServiceMonitor'));
    for (const [key, value] of Object.entries(monitor.spec.selector.matchLabels)) expect(service.metadata.labels?.[key]).toBe(value);
    for (const endpoint of monitor.spec.endpoints) expect(service.spec.ports.map((p) => p.name)).toContain(endpoint.port);
    for (const label of monitor.spec.podTargetLabels ?? []) expect(ds.spec.template.metadata.labels[label]).toBeDefined();
    expect(monitor.spec.endpoints[0]?.relabelings).toContainEqual(expect.objectContaining({ sourceLabels: ['__meta_kubernetes_pod_node_name'], targetLabel: 'node' }));
  });
});

describe.skipIf(!kubectl)('overlay differences', () => {
  it('only the GPU overlay asks for a GPU, the nvidia runtime and GPU nodes, and labels its pods accelerator=gpu', () => {
    const gpu = podSpec('gpu');
    const gpuMain = mainContainer('gpu');
    expect(gpuMain.resources?.limits?.['nvidia.com/gpu']).toBe(1);
    expect(gpu.runtimeClassName).toBe('nvidia');
    expect(gpu.nodeSelector?.['nvidia.com/gpu.present']).toBe('true');
    expect((gpu.tolerations ?? []).some((t) => tolerates(t, { key: 'nvidia.com/gpu', effect: 'NoSchedule' }))).toBe(true);
    expect(daemonSet('gpu').spec.template.metadata.labels.accelerator).toBe('gpu');

    const cpu = daemonSet('cpu');
    expect(JSON.stringify(cpu)).not.toContain('nvidia');
    expect(cpu.spec.template.spec.runtimeClassName).toBeUndefined();
    expect(cpu.spec.template.metadata.labels.accelerator).toBe('cpu');
  });

  it('everything but the DaemonSet is the same in both overlays', () => {
    const rest = (o: Overlay): K8sObject[] => objects(o).filter((x) => x.kind !== 'DaemonSet');
    expect(rest('gpu')).toEqual(rest('cpu'));
  });

  it('the schema validation has teeth: a wrongly typed field is rejected', () => {
    const broken = structuredClone(daemonSet('cpu'));
    (broken.spec.template.spec.containers[0] as { ports: unknown }).ports = [{ name: 'metrics', containerPort: '9464' }];
    expect(() => validators['apps/v1/DaemonSet']?.(broken)).toThrow(/containerPort must be integer/);
    const monitor = structuredClone(findObject(objects('cpu'), 'ServiceMonitor')) as K8sObject & { spec: Record<string, unknown> };
    monitor.spec.endpoint = [];
    expect(() => validators['monitoring.coreos.com/v1/ServiceMonitor']?.(monitor)).toThrow();
  });
});
