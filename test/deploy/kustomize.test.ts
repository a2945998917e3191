/**
 * k8s/overlays/fleet as `kubectl kustomize` renders it: every object validated offline (kubernetes-models'
 * types, unknown fields against its declarations, the Prometheus Operator kinds against zod schemas
 * here), the two DaemonSets against the deployment rules and a table of nodes, and the daemon's
 * effective config computed by its own loader.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Namespace, Service, ServiceAccount, ConfigMap } from 'kubernetes-models/v1';
import { DaemonSet } from 'kubernetes-models/apps/v1';
import { NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1';
import { PriorityClass } from 'kubernetes-models/scheduling.k8s.io/v1';
import type { IContainer } from 'kubernetes-models/v1/Container';
import type { INodeSelectorRequirement } from 'kubernetes-models/v1/NodeSelectorRequirement';
import type { IPodSpec } from 'kubernetes-models/v1/PodSpec';
import type { IToleration } from 'kubernetes-models/v1/Toleration';
import type { INetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1/NetworkPolicy';
import { parse as parseYaml } from 'yaml';
import { describe, expect, it } from 'vitest';
import { applyEnv, validateConfig } from '../../src/config/load.js';
import type { Config } from '../../src/config/schema.js';
import { prometheusRuleSchema, serviceMonitorSchema } from '../support/crd-schemas.js';
import { findObject, hasTool, kustomize, kustomizeWith, repoRoot, unknownFields, type K8sObject } from '../support/deploy.js';

const kubectl = hasTool('kubectl');
const fleet = kubectl ? kustomize('k8s/overlays/fleet') : [];
const variants = ['cpu', 'gpu'] as const;
type Variant = (typeof variants)[number];

/** Offline schema validation for every kind the overlay renders; an unknown kind fails. */
const validators: Record<string, (o: K8sObject) => void> = {
  'v1/Namespace': (o) => new Namespace(o as never).validate(),
  'v1/ServiceAccount': (o) => new ServiceAccount(o as never).validate(),
  'v1/ConfigMap': (o) => new ConfigMap(o as never).validate(),
  'v1/Service': (o) => new Service(o as never).validate(),
  'apps/v1/DaemonSet': (o) => new DaemonSet(o as never).validate(),
  'networking.k8s.io/v1/NetworkPolicy': (o) => new NetworkPolicy(o as never).validate(),
  'scheduling.k8s.io/v1/PriorityClass': (o) => new PriorityClass(o as never).validate(),
  'monitoring.coreos.com/v1/ServiceMonitor': (o) => void serviceMonitorSchema.parse(o),
  'monitoring.coreos.com/v1/PrometheusRule': (o) => void prometheusRuleSchema.parse(o),
};
const isCoreKind = (o: K8sObject): boolean => !o.apiVersion.startsWith('monitoring.coreos.com/');

interface DaemonSetObject extends K8sObject {
  spec: {
    selector: { matchLabels: Record<string, string> };
    updateStrategy: { type: string; rollingUpdate?: { maxUnavailable?: number | string; maxSurge?: number | string } };
    minReadySeconds?: number;
    template: { metadata: { labels: Record<string, string> }; spec: IPodSpec };
  };
}

function daemonSet(variant: Variant): DaemonSetObject {
  return findObject<DaemonSetObject>(fleet, 'DaemonSet', `sentinel-${variant}`);
}

function podSpec(variant: Variant): IPodSpec {
  return daemonSet(variant).spec.template.spec;
}

function container(variant: Variant, name = 'sentinel'): IContainer {
  const found = [...(podSpec(variant).initContainers ?? []), ...podSpec(variant).containers].filter((c) => c.name === name);
  if (found.length !== 1) throw new Error(`expected one container named ${name}, found ${found.length}`);
  return found[0] as IContainer;
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

function matchesExpression(labels: Record<string, string>, e: INodeSelectorRequirement): boolean {
  const value = labels[e.key];
  switch (e.operator) {
    case 'In':
      return value !== undefined && (e.values ?? []).includes(value);
    case 'NotIn':
      return value === undefined || !(e.values ?? []).includes(value);
    case 'Exists':
      return value !== undefined;
    case 'DoesNotExist':
      return value === undefined;
    default:
      throw new Error(`operator ${e.operator} is not modelled here`);
  }
}

interface Node {
  name: string;
  labels: Record<string, string>;
  taints: Array<{ key: string; value?: string; effect: string }>;
}

/** The scheduler's and the DaemonSet controller's question: does a pod of this spec belong on the node? */
function runsOn(spec: IPodSpec, node: Node): boolean {
  for (const [key, value] of Object.entries(spec.nodeSelector ?? {})) if (node.labels[key] !== value) return false;
  const terms = spec.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms;
  if (terms && !terms.some((term) => (term.matchExpressions ?? []).every((e) => matchesExpression(node.labels, e)))) return false;
  return node.taints.filter((t) => t.effect !== 'PreferNoSchedule').every((taint) => (spec.tolerations ?? []).some((t) => tolerates(t, taint)));
}

/**
 * NodeRestriction's rule for labels a kubelet may set on its own Node (--node-labels): nothing under
 * node-restriction.kubernetes.io, and under kubernetes.io or k8s.io only the kubelet's own labels.
 */
function kubeletMaySet(key: string): boolean {
  const namespace = key.includes('/') ? (key.split('/')[0] as string) : '';
  const under = (suffix: string): boolean => namespace === suffix || namespace.endsWith(`.${suffix}`);
  if (under('node-restriction.kubernetes.io')) return false;
  if (!under('kubernetes.io') && !under('k8s.io')) return true;
  const kubeletLabels = [
    'kubernetes.io/hostname', 'kubernetes.io/arch', 'kubernetes.io/os', 'beta.kubernetes.io/arch', 'beta.kubernetes.io/os',
    'beta.kubernetes.io/instance-type', 'node.kubernetes.io/instance-type', 'failure-domain.beta.kubernetes.io/region',
    'failure-domain.beta.kubernetes.io/zone', 'topology.kubernetes.io/region', 'topology.kubernetes.io/zone',
  ];
  return kubeletLabels.includes(key) || under('kubelet.kubernetes.io') || under('node.kubernetes.io');
}

/** Port number of a probe or Service targetPort given by name or number. */
function portNumber(c: IContainer, port: number | string): number {
  if (typeof port === 'number') return port;
  const found = c.ports?.find((p) => p.name === port);
  if (!found) throw new Error(`container ${c.name} has no port named ${port}`);
  return found.containerPort;
}

function mountPath(c: IContainer, volume: string): string {
  const mount = c.volumeMounts?.find((m) => m.name === volume);
  if (!mount) throw new Error(`container ${c.name} does not mount ${volume}`);
  return mount.mountPath;
}

function configMapData(objects: K8sObject[], name: string | undefined): Record<string, string> {
  return findObject<K8sObject & { data: Record<string, string> }>(objects, 'ConfigMap', name).data;
}

/** The environment a container gets from its envFrom ConfigMaps. */
function envFromConfigMaps(c: IContainer): Record<string, string> {
  return Object.assign({}, ...(c.envFrom ?? []).map((e) => configMapData(fleet, e.configMapRef?.name)));
}

const stand = { nodeName: 'edge-node-7', username: 'sentinel-user' };

/**
 * The config the daemon would run with in this pod: the mounted ConfigMap's file plus the
 * container's environment, through src/config/load.ts. Downward-API and Secret values are stand-ins.
 */
function effectiveConfig(variant: Variant): { config: Config; env: Record<string, string> } {
  const main = container(variant);
  const env: Record<string, string> = {};
  for (const e of main.env ?? []) {
    if (e.value !== undefined) env[e.name] = e.value;
    else if (e.valueFrom?.fieldRef?.fieldPath === 'spec.nodeName') env[e.name] = stand.nodeName;
    else if (e.valueFrom?.secretKeyRef?.key === 'username') env[e.name] = stand.username;
    else throw new Error(`env ${e.name}: no stand-in for ${JSON.stringify(e.valueFrom)}`);
  }
  const configPath = env.SENTINEL_CONFIG as string;
  const configMount = mountPath(main, 'config');
  expect(configPath.startsWith(`${configMount}/`), 'SENTINEL_CONFIG lies in the config mount').toBe(true);
  const volume = podSpec(variant).volumes?.find((v) => v.name === 'config');
  const file = configMapData(fleet, volume?.configMap?.name)[configPath.slice(configMount.length + 1)];
  expect(file, 'the config ConfigMap has the key SENTINEL_CONFIG names').toBeDefined();
  const raw = (parseYaml(file as string) ?? {}) as Record<string, unknown>;
  return { config: validateConfig(applyEnv(raw, env), `${variant}:${configPath}`), env };
}

/**
 * The Pod Security Standard "restricted" (Kubernetes 1.30+), control by control, as the violations it
 * would report for a pod spec.
 */
function restrictedViolations(spec: IPodSpec): string[] {
  const out: string[] = [];
  const pod = spec.securityContext ?? {};
  if (spec.hostNetwork || spec.hostPID || spec.hostIPC) out.push('host namespaces');
  const allowedVolumes = new Set(['configMap', 'csi', 'downwardAPI', 'emptyDir', 'ephemeral', 'persistentVolumeClaim', 'projected', 'secret', 'image']);
  for (const volume of spec.volumes ?? []) {
    for (const type of Object.keys(volume).filter((k) => k !== 'name' && !allowedVolumes.has(k))) out.push(`volume ${volume.name}: ${type}`);
  }
  for (const sysctl of pod.sysctls ?? []) out.push(`sysctl ${sysctl.name}`);
  for (const c of allContainers(spec)) {
    const sc = c.securityContext ?? {};
    if (sc.privileged) out.push(`${c.name}: privileged`);
    if ((c.ports ?? []).some((p) => p.hostPort !== undefined && p.hostPort !== 0)) out.push(`${c.name}: hostPort`);
    if (sc.allowPrivilegeEscalation !== false) out.push(`${c.name}: allowPrivilegeEscalation != false`);
    if (!(sc.runAsNonRoot ?? pod.runAsNonRoot)) out.push(`${c.name}: runAsNonRoot != true`);
    if ((sc.runAsUser ?? pod.runAsUser) === 0) out.push(`${c.name}: runAsUser 0`);
    if (!sc.capabilities?.drop?.includes('ALL')) out.push(`${c.name}: capabilities not dropped`);
    for (const cap of sc.capabilities?.add ?? []) if (cap !== 'NET_BIND_SERVICE') out.push(`${c.name}: adds ${cap}`);
    const seccomp = sc.seccompProfile?.type ?? pod.seccompProfile?.type;
    if (seccomp !== 'RuntimeDefault' && seccomp !== 'Localhost') out.push(`${c.name}: seccomp`);
    if (sc.procMount && sc.procMount !== 'Default') out.push(`${c.name}: procMount`);
    if (sc.seLinuxOptions?.type && !['container_t', 'container_init_t', 'container_kvm_t'].includes(sc.seLinuxOptions.type)) out.push(`${c.name}: SELinux type`);
  }
  return out;
}

describe.skipIf(!kubectl)('k8s/overlays/fleet', () => {
  it('renders the shared objects once, two DaemonSets, and nothing that fails its schema', () => {
    const kinds = fleet.map((o) => `${o.kind}/${o.metadata.name}`);
    // The hash suffixes make every config or script change roll the DaemonSets.
    for (const generated of ['sentinel-config', 'sentinel-model-sync', 'sentinel-model-sync-script']) {
      expect(kinds.filter((k) => new RegExp(`^ConfigMap/${generated}-[a-z0-9]{10}$`).test(k)), generated).toHaveLength(1);
    }
    expect(kinds.filter((k) => !/^ConfigMap\/sentinel-(config|model-sync|model-sync-script)-[a-z0-9]{10}$/.test(k)).sort()).toEqual([
      'ConfigMap/sentinel-grafana-dashboard',
      'DaemonSet/sentinel-cpu',
      'DaemonSet/sentinel-gpu',
      'Namespace/sentinel',
      'NetworkPolicy/sentinel-metrics',
      'PriorityClass/sentinel-edge',
      'PrometheusRule/sentinel',
      'Service/sentinel-metrics',
      'ServiceAccount/sentinel',
      'ServiceMonitor/sentinel',
    ]);
    for (const o of fleet) {
      const validate = validators[`${o.apiVersion}/${o.kind}`];
      expect(validate, `a validator for ${o.apiVersion} ${o.kind}`).toBeDefined();
      (validate as (o: K8sObject) => void)(o);
      if (o.kind !== 'Namespace' && o.kind !== 'PriorityClass') expect(o.metadata.namespace, o.metadata.name).toBe('sentinel');
      expect(o.metadata.labels?.['app.kubernetes.io/name'], `${o.kind} label`).toBe('sentinel');
    }
    expect(unknownFields(fleet.filter(isCoreKind))).toEqual([]);
  });

  it('the schema validation has teeth: a misspelt field, a field in the wrong place, a wrong type', () => {
    const broken = structuredClone(daemonSet('cpu')) as DaemonSetObject & { spec: Record<string, unknown> };
    broken.spec.revisionHistoryLimt = 5;
    const main = broken.spec.template.spec.containers[0] as IContainer & Record<string, unknown>;
    (main.securityContext as Record<string, unknown>).readOnlyRootFileSystem = true;
    (main.startupProbe as Record<string, unknown>).initialDelay = 5;
    const service = structuredClone(findObject(fleet, 'Service')) as K8sObject & { spec: Record<string, unknown> };
    service.spec.publishNotReady = true;
    expect(unknownFields([broken, service]).sort()).toEqual([
      'DaemonSet/sentinel-cpu: spec.revisionHistoryLimt',
      'DaemonSet/sentinel-cpu: spec.template.spec.containers[0].securityContext.readOnlyRootFileSystem',
      'DaemonSet/sentinel-cpu: spec.template.spec.containers[0].startupProbe.initialDelay',
      'Service/sentinel-metrics: spec.publishNotReady',
    ]);
    const typo = structuredClone(daemonSet('cpu'));
    (typo.spec.template.spec.containers[0] as { ports: unknown }).ports = [{ name: 'metrics', containerPort: '9464' }];
    expect(() => validators['apps/v1/DaemonSet']?.(typo)).toThrow(/containerPort must be integer/);
    const monitor = structuredClone(findObject(fleet, 'ServiceMonitor')) as K8sObject & { spec: Record<string, unknown> };
    monitor.spec.endpoint = [];
    expect(() => validators['monitoring.coreos.com/v1/ServiceMonitor']?.(monitor)).toThrow();
  });

  it('ships references to the broker Secrets, never a Secret: whole volumes the kubelet updates on rotation, TLS optional', () => {
    expect(fleet.filter((o) => o.kind === 'Secret')).toEqual([]);
    for (const variant of variants) {
      const spec = podSpec(variant);
      const secrets = new Set([
        ...(spec.volumes ?? []).flatMap((v) => (v.secret?.secretName ? [v.secret.secretName] : [])),
        ...(container(variant).env ?? []).flatMap((e) => (e.valueFrom?.secretKeyRef?.name ? [e.valueFrom.secretKeyRef.name] : [])),
      ]);
      expect([...secrets].sort()).toEqual(['sentinel-broker', 'sentinel-broker-tls']);
      // A plain mqtt:// broker has no CA to give: the pod must not wait for one in ContainerCreating.
      expect(spec.volumes?.find((v) => v.secret?.secretName === 'sentinel-broker-tls')?.secret?.optional).toBe(true);
      expect(spec.volumes?.find((v) => v.secret?.secretName === 'sentinel-broker')?.secret?.optional ?? false).toBe(false);
      // subPath mounts never see a rotated Secret; the daemon re-reads these files on every reconnect.
      for (const volume of ['broker-credentials', 'broker-tls']) {
        const mount = container(variant).volumeMounts?.find((m) => m.name === volume);
        expect(mount?.subPath ?? mount?.subPathExpr, volume).toBeUndefined();
      }
    }
  });

  it('puts exactly one Sentinel on every edge node, the GPU variant on GPU nodes, none elsewhere', () => {
    const edgeTaint = { key: 'node-role.kubernetes.io/edge', effect: 'NoSchedule' };
    const edge = { 'sentinel.example.com/edge': 'true', 'kubernetes.io/arch': 'amd64' };
    const arm = { 'sentinel.example.com/edge': 'true', 'kubernetes.io/arch': 'arm64' };
    const nodes: Array<Node & { expect: Variant | null }> = [
      { name: 'cpu edge node', labels: edge, taints: [edgeTaint], expect: 'cpu' },
      { name: 'edge node, no taint', labels: edge, taints: [], expect: 'cpu' },
      { name: 'GPU edge node', labels: { ...edge, 'nvidia.com/gpu.present': 'true' }, taints: [edgeTaint], expect: 'gpu' },
      { name: 'GPU edge node with the GPU pool taint', labels: { ...edge, 'nvidia.com/gpu.present': 'true' }, taints: [edgeTaint, { key: 'nvidia.com/gpu', value: 'present', effect: 'NoSchedule' }], expect: 'gpu' },
      { name: 'edge node whose GPU is gone', labels: { ...edge, 'nvidia.com/gpu.present': 'false' }, taints: [edgeTaint], expect: 'cpu' },
      { name: 'ARM64 edge gateway', labels: arm, taints: [edgeTaint], expect: 'cpu' },
      // No CUDA image for linux/arm64 (docs/image.md): its CPU image runs there.
      { name: 'ARM64 GPU edge node (Jetson)', labels: { ...arm, 'nvidia.com/gpu.present': 'true' }, taints: [edgeTaint], expect: 'cpu' },
      { name: 'edge label false', labels: { 'sentinel.example.com/edge': 'false' }, taints: [], expect: null },
      { name: 'ordinary worker', labels: {}, taints: [], expect: null },
      { name: 'GPU worker, not edge', labels: { 'nvidia.com/gpu.present': 'true' }, taints: [], expect: null },
      { name: 'control plane', labels: { ...edge, 'node-role.kubernetes.io/control-plane': '' }, taints: [{ key: 'node-role.kubernetes.io/control-plane', effect: 'NoSchedule' }], expect: null },
    ];
    for (const node of nodes) {
      expect(variants.filter((v) => runsOn(podSpec(v), node)), node.name).toEqual(node.expect === null ? [] : [node.expect]);
    }
  });

  it('selects nodes by labels a joining kubelet may set on itself (NodeRestriction)', () => {
    expect(kubeletMaySet('node-role.kubernetes.io/edge')).toBe(false);
    expect(kubeletMaySet('node-restriction.kubernetes.io/edge')).toBe(false);
    expect(kubeletMaySet('node.kubernetes.io/edge')).toBe(true);
    expect(kubeletMaySet('example.com/edge')).toBe(true);
    for (const variant of variants) {
      const terms = podSpec(variant).affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms ?? [];
      expect(terms.length).toBeGreaterThan(0);
      // Terms are ORed: each one must require the edge label.
      for (const term of terms) expect(term.matchExpressions).toContainEqual({ key: 'sentinel.example.com/edge', operator: 'In', values: ['true'] });
      const keys = terms.flatMap((t) => (t.matchExpressions ?? []).map((e) => e.key));
      for (const key of [...keys, ...Object.keys(podSpec(variant).nodeSelector ?? {})]) expect(kubeletMaySet(key), key).toBe(true);
    }
  });

  it('probes: startup /startupz (the model, not the broker), liveness /healthz, readiness /readyz, all on the metrics port', () => {
    for (const variant of variants) {
      const main = container(variant);
      const { config } = effectiveConfig(variant);
      const { livenessProbe, readinessProbe, startupProbe } = main;
      expect(startupProbe?.httpGet?.path).toBe('/startupz');
      expect(livenessProbe?.httpGet?.path).toBe('/healthz');
      expect(readinessProbe?.httpGet?.path).toBe('/readyz');
      for (const probe of [livenessProbe, readinessProbe, startupProbe]) {
        expect(portNumber(main, probe?.httpGet?.port as number | string)).toBe(config.http.port);
      }
      // Room for a slow model load (a CUDA session) before liveness takes over.
      const budget = (startupProbe?.periodSeconds ?? 10) * (startupProbe?.failureThreshold ?? 3);
      expect(budget).toBeGreaterThanOrEqual(120);
      expect(main.ports?.find((p) => p.name === 'metrics')?.containerPort).toBe(9464);
    }
  });

  it('rolls out a tenth of the nodes at a time, never two pods on a node, ready for 10 s before moving on', () => {
    for (const variant of variants) {
      const { updateStrategy, minReadySeconds } = daemonSet(variant).spec;
      expect(updateStrategy.type).toBe('RollingUpdate');
      expect(updateStrategy.rollingUpdate?.maxUnavailable).toBe('10%');
      // Two pods on one node would share the MQTT client id and the outbox file.
      expect(updateStrategy.rollingUpdate?.maxSurge ?? 0).toBe(0);
      expect(minReadySeconds).toBeGreaterThanOrEqual(10);
    }
  });

  it('the daemon config each variant would run with: node-local topics, mounted files, grace period above the drain budget', () => {
    for (const variant of variants) {
      const { config, env } = effectiveConfig(variant);
      const main = container(variant);
      const spec = podSpec(variant);
      expect((main.env ?? []).find((e) => e.name === 'SENTINEL_NODE_NAME')?.valueFrom?.fieldRef?.fieldPath).toBe('spec.nodeName');
      expect(config.nodeName).toBe(stand.nodeName);
      expect(config.broker.clientId).toContain(stand.nodeName);
      for (const sub of config.subscriptions) expect(sub.topic.split('/')).toContain(stand.nodeName);
      expect(config.broker.url).toMatch(/^mqtts:\/\//);
      expect(config.broker.username).toBe(stand.username);
      expect(config.broker.password).toBeUndefined();
      const credentials = spec.volumes?.find((v) => v.name === 'broker-credentials')?.secret;
      expect(config.broker.passwordFile).toBe(`${mountPath(main, 'broker-credentials')}/${credentials?.items?.[0]?.path}`);
      expect(credentials?.items?.[0]?.key).toBe('password');
      expect(config.broker.tls?.caFile?.startsWith(`${mountPath(main, 'broker-tls')}/`)).toBe(true);
      expect(config.model.path.startsWith(`${mountPath(main, 'models')}/`)).toBe(true);
      expect(config.outbox.path.startsWith(`${mountPath(main, 'outbox')}/`)).toBe(true);
      expect(config.model.executionProviders).toEqual(variant === 'gpu' ? ['cuda', 'cpu'] : ['cpu']);
      expect((spec.terminationGracePeriodSeconds ?? 30) * 1000).toBeGreaterThanOrEqual(config.shutdown.graceMs + 10_000);
      expect(Object.keys(env).filter((k) => k.startsWith('SENTINEL_') && k.includes('PASSWORD') && !k.endsWith('_FILE'))).toEqual([]);
    }
  });

  it('outbox and models on the node under /var/lib/sentinel, so they outlive the pod; models read-only in the daemon', () => {
    for (const variant of variants) {
      const spec = podSpec(variant);
      const main = container(variant);
      const hostPaths = Object.fromEntries((spec.volumes ?? []).filter((v) => v.hostPath).map((v) => [v.name, v.hostPath]));
      expect(hostPaths).toEqual({
        outbox: { path: '/var/lib/sentinel/outbox', type: 'Directory' },
        models: { path: '/var/lib/sentinel/models', type: 'Directory' },
      });
      expect(mountPath(main, 'outbox')).toBe('/var/lib/sentinel');
      const writable = (main.volumeMounts ?? []).filter((m) => m.readOnly !== true).map((m) => m.mountPath);
      expect(writable.sort()).toEqual(['/tmp', '/var/lib/sentinel']);
      // Only the model-sync containers write the models, and only there.
      for (const name of ['models', 'model-sync']) {
        const sync = container(variant, name);
        expect((sync.volumeMounts ?? []).filter((m) => m.readOnly !== true).map((m) => m.name), name).toEqual(['models']);
        expect(mountPath(sync, 'models')).toBe(mountPath(main, 'models'));
      }
    }
  });

  it('meets every control of the restricted Pod Security Standard but hostPath, which the namespace allows and reports', () => {
    for (const variant of variants) expect(restrictedViolations(podSpec(variant)), variant).toEqual(['volume models: hostPath', 'volume outbox: hostPath']);
    // Baseline forbids hostPath too; warn and audit keep reporting against restricted.
    const namespace = findObject(fleet, 'Namespace', 'sentinel');
    expect(namespace.metadata.labels).toMatchObject({
      'pod-security.kubernetes.io/enforce': 'privileged',
      'pod-security.kubernetes.io/warn': 'restricted',
      'pod-security.kubernetes.io/audit': 'restricted',
    });
    expect(restrictedViolations({ containers: [{ name: 'x', securityContext: { privileged: true } }] } as IPodSpec)).toContain('x: privileged');
  });

  it('keeps the model-sync containers on the shipped script and settings, in step with model.path', () => {
    const script = readFileSync(join(repoRoot, 'k8s/common/model-sync.mjs'), 'utf8');
    for (const variant of variants) {
      const { config } = effectiveConfig(variant);
      for (const [name, mode] of [['models', 'seed'], ['model-sync', 'watch']] as const) {
        const sync = container(variant, name);
        expect(sync.image).toBe(container(variant).image);
        const scriptMount = mountPath(sync, 'model-sync-script');
        expect(sync.command).toEqual(['node', `${scriptMount}/model-sync.mjs`, mode]);
        const env = envFromConfigMaps(sync);
        expect(env.MODEL_NAMES?.split(',')).toContain(config.model.path.slice(mountPath(container(variant), 'models').length + 1).replace(/\.onnx$/, ''));
        expect(env.MODEL_DIR ?? '/models').toBe(mountPath(sync, 'models'));
      }
      expect(podSpec(variant).initContainers?.map((c) => c.name)).toEqual(['models']);
      const volume = podSpec(variant).volumes?.find((v) => v.name === 'model-sync-script');
      expect(configMapData(fleet, volume?.configMap?.name)['model-sync.mjs']).toBe(script);
    }
  });

  it('no API token, no service-link variables, a priority class that exists, selectors of their own', () => {
    for (const variant of variants) {
      const spec = podSpec(variant);
      const ds = daemonSet(variant);
      expect(spec.automountServiceAccountToken).toBe(false);
      const sa = findObject<K8sObject & { automountServiceAccountToken?: boolean }>(fleet, 'ServiceAccount', spec.serviceAccountName);
      expect(sa.automountServiceAccountToken).toBe(false);
      expect(spec.enableServiceLinks).toBe(false);
      findObject(fleet, 'PriorityClass', spec.priorityClassName);
      for (const [key, value] of Object.entries(ds.spec.selector.matchLabels)) expect(ds.spec.template.metadata.labels[key]).toBe(value);
      expect(ds.spec.template.metadata.labels.accelerator).toBe(variant);
    }
    // Neither DaemonSet may claim the other's pods.
    const [cpu, gpu] = variants.map((v) => daemonSet(v));
    const claims = (ds: DaemonSetObject, labels: Record<string, string>): boolean => Object.entries(ds.spec.selector.matchLabels).every(([k, v]) => labels[k] === v);
    expect(claims(cpu as DaemonSetObject, (gpu as DaemonSetObject).spec.template.metadata.labels)).toBe(false);
    expect(claims(gpu as DaemonSetObject, (cpu as DaemonSetObject).spec.template.metadata.labels)).toBe(false);
  });

  it('adopts the pods of the single `sentinel` DaemonSet that 0.1.0 shipped, so migrating replaces them node by node', () => {
    // The pod labels of 0.1.0's cpu and gpu overlays (docs/deploy.md, "Upgrade from 0.1.0").
    for (const variant of variants) {
      const oldPod: Record<string, string> = { 'app.kubernetes.io/name': 'sentinel', 'app.kubernetes.io/instance': 'sentinel', 'app.kubernetes.io/component': 'detector', accelerator: variant };
      for (const [key, value] of Object.entries(daemonSet(variant).spec.selector.matchLabels)) expect(oldPod[key], `${variant}: ${key}`).toBe(value);
    }
  });

  it('requests and limits resources for every container', () => {
    for (const variant of variants) {
      for (const c of allContainers(podSpec(variant))) {
        for (const kind of ['requests', 'limits'] as const) {
          expect(c.resources?.[kind]?.cpu, `${variant} ${c.name} ${kind}.cpu`).toBeDefined();
          expect(c.resources?.[kind]?.memory, `${variant} ${c.name} ${kind}.memory`).toBeDefined();
        }
      }
    }
  });

  it('uses pinned images, never latest: one per DaemonSet, the -gpu one for the GPU variant', () => {
    for (const variant of variants) {
      const images = allContainers(podSpec(variant)).map((c) => c.image as string);
      for (const image of images) {
        expect(image).toMatch(/^[\w.-]+(:\d+)?\/[\w./-]+(:[\w.-]+|@sha256:[0-9a-f]{64})$/);
        expect(image).not.toMatch(/:latest$/);
      }
      expect(new Set(images).size).toBe(1);
      expect(images[0]).toMatch(variant === 'gpu' ? /:\d+\.\d+\.\d+-gpu$/ : /:\d+\.\d+\.\d+$/);
    }
  });

  it('only the GPU variant asks for a GPU, the nvidia runtime and its taint', () => {
    const gpu = podSpec('gpu');
    expect(container('gpu').resources?.limits?.['nvidia.com/gpu']).toBe(1);
    expect(gpu.runtimeClassName).toBe('nvidia');
    expect((gpu.tolerations ?? []).some((t) => tolerates(t, { key: 'nvidia.com/gpu', effect: 'NoSchedule' }))).toBe(true);
    const cpu = podSpec('cpu');
    expect(cpu.runtimeClassName).toBeUndefined();
    expect(allContainers(cpu).some((c) => Object.keys(c.resources?.limits ?? {}).some((r) => r.startsWith('nvidia.com/')))).toBe(false);
    expect((cpu.tolerations ?? []).some((t) => tolerates(t, { key: 'nvidia.com/gpu', effect: 'NoSchedule' }))).toBe(false);
  });

  it('exposes metrics through a headless Service the ServiceMonitor selects, open to Prometheus only', () => {
    const service = findObject<K8sObject & { spec: { clusterIP: string; selector: Record<string, string>; ports: Array<{ name: string; port: number; targetPort: string | number }> } }>(
      fleet,
      'Service',
      'sentinel-metrics',
    );
    const monitor = serviceMonitorSchema.parse(findObject(fleet, 'ServiceMonitor'));
    const policy = findObject<INetworkPolicy & K8sObject>(fleet, 'NetworkPolicy', 'sentinel-metrics');
    expect(service.spec.clusterIP).toBe('None');
    for (const variant of variants) {
      const labels = daemonSet(variant).spec.template.metadata.labels;
      for (const [key, value] of Object.entries(service.spec.selector)) expect(labels[key], variant).toBe(value);
      for (const [key, value] of Object.entries(policy.spec?.podSelector.matchLabels ?? {})) expect(labels[key], variant).toBe(value);
      const port = service.spec.ports.find((p) => p.name === 'metrics');
      expect(portNumber(container(variant), port?.targetPort as string)).toBe(9464);
      for (const label of monitor.spec.podTargetLabels ?? []) expect(labels[label]).toBeDefined();
    }
    for (const [key, value] of Object.entries(monitor.spec.selector.matchLabels)) expect(service.metadata.labels?.[key]).toBe(value);
    for (const endpoint of monitor.spec.endpoints) expect(service.spec.ports.map((p) => p.name)).toContain(endpoint.port);
    expect(monitor.spec.endpoints[0]?.relabelings).toContainEqual(expect.objectContaining({ sourceLabels: ['__meta_kubernetes_pod_node_name'], targetLabel: 'node' }));
    // Ingress only (the broker and the model source are egress), one rule: the metrics port, from Prometheus.
    expect(policy.spec?.policyTypes).toEqual(['Ingress']);
    expect(policy.spec?.ingress).toHaveLength(1);
    const rule = policy.spec?.ingress?.[0];
    expect(rule?.ports).toEqual([{ port: 'metrics', protocol: 'TCP' }]);
    expect(rule?.from).toEqual([{ namespaceSelector: {}, podSelector: { matchLabels: { 'app.kubernetes.io/name': 'prometheus' } } }]);
  });

  it('keeps job="sentinel" and working references under an operator\'s namePrefix', () => {
    const prefixed = kustomizeWith('k8s/overlays/fleet', 'namePrefix: acme-');
    for (const objects of [fleet, prefixed]) {
      const monitor = serviceMonitorSchema.parse(findObject(objects, 'ServiceMonitor'));
      const service = findObject(objects, 'Service');
      // The Prometheus Operator takes the job from this Service label, and from the Service name without it.
      expect(service.metadata.labels?.[monitor.spec.jobLabel as string]).toBe('sentinel');
    }
    const cpu = findObject<DaemonSetObject>(prefixed, 'DaemonSet', 'acme-sentinel-cpu');
    const names = new Set(prefixed.map((o) => `${o.kind}/${o.metadata.name}`));
    for (const volume of cpu.spec.template.spec.volumes ?? []) if (volume.configMap) expect(names.has(`ConfigMap/${volume.configMap.name}`), volume.name).toBe(true);
    for (const c of allContainers(cpu.spec.template.spec)) for (const e of c.envFrom ?? []) expect(names.has(`ConfigMap/${e.configMapRef?.name}`)).toBe(true);
  });
});
