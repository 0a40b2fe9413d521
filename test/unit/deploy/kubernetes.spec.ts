import 'reflect-metadata';

import { execFile } from 'node:child_process';
import {
  accessSync,
  constants,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join, posix } from 'node:path';
import { promisify } from 'node:util';

import { Deployment, IDeployment } from 'kubernetes-models/apps/v1/Deployment';
import { Ingress, IIngress } from 'kubernetes-models/networking.k8s.io/v1/Ingress';
import {
  INetworkPolicy,
  NetworkPolicy,
} from 'kubernetes-models/networking.k8s.io/v1/NetworkPolicy';
import {
  IPodDisruptionBudget,
  PodDisruptionBudget,
} from 'kubernetes-models/policy/v1/PodDisruptionBudget';
import { ConfigMap, IConfigMap } from 'kubernetes-models/v1/ConfigMap';
import type { IContainer } from 'kubernetes-models/v1/Container';
import type { IIntOrString } from '@kubernetes-models/apimachinery/util/intstr/IntOrString';
import { Secret } from 'kubernetes-models/v1/Secret';
import { IService, Service } from 'kubernetes-models/v1/Service';
import { IServiceAccount, ServiceAccount } from 'kubernetes-models/v1/ServiceAccount';
import { parseAllDocuments } from 'yaml';

import { CONFIG_KEYS, loadConfig } from '../../../src/config/load-config';
import { SECRET_KEY_PATTERN } from '../../../src/plugins/manifest/manifest.constants';
import { parsePluginsConfig } from '../../../src/plugins/manifest/plugins-config';
import { DEFAULT_TRACKER_OPTIONS } from '../../../src/plugins/process/plugin-process-tracker';
import { DEFAULT_POLICY } from '../../../src/plugins/process/supervision-policy';
import { MountedSecrets } from '../../../src/plugins/secrets/mounted-secrets';
import { isPluginName } from '../../../src/plugins/shared/plugin.types';
import { K8sObject, K8sSchema } from '../../helpers/k8s-schema';

const REPO_ROOT = join(__dirname, '..', '..', '..');
const DEPLOY_DIR = join(REPO_ROOT, 'deploy', 'kubernetes');
const KUSTOMIZATIONS = ['base', 'overlays/ha', 'overlays/ha-database'] as const;
type Kustomization = (typeof KUSTOMIZATIONS)[number];
/** Secrets for the operator to create, shown by example; not part of any kustomization. */
const EXAMPLES = ['base/secret.example.yaml'];

/** What the image sets (Dockerfile): the Deployment may rely on these without repeating them. */
const IMAGE_ENV: Readonly<Record<string, string>> = {
  NODE_ENV: 'production',
  DATA_DIR: '/var/lib/portico',
  PLUGINS_DIR: '/app/plugins',
  PORT: '8080',
};
/** Besides DATA_DIR, the one writable path the image needs (Dockerfile). */
const WRITABLE_PATHS = ['/tmp'];
/** Variables a container may set that are not Portico's own configuration. */
const RUNTIME_ENV = new Set(['NODE_OPTIONS']);
/** V8's heap may take at most this share of the memory limit: plugins need the rest. */
const MAX_HEAP_SHARE = 0.6;
/** ... and at least this much, or the host itself runs short. */
const MIN_HEAP_MIB = 128;
/** Nginx ingress idle timeouts for WebSockets: at least an hour. */
const MIN_WS_TIMEOUT_S = 3600;
/** Volume types the "restricted" Pod Security Standard allows. */
const RESTRICTED_VOLUME_TYPES = new Set([
  'configMap',
  'csi',
  'downwardAPI',
  'emptyDir',
  'ephemeral',
  'persistentVolumeClaim',
  'projected',
  'secret',
]);
/** Paths the Ingress must never route from outside: unauthenticated, for the cluster only. */
const INTERNAL_PATHS = ['/metrics', '/healthz', '/readyz'];

const run = promisify(execFile);

/** kubectl on PATH (the google-cloud-sdk package puts it at /usr/bin/kubectl). */
function findKubectl(): string | undefined {
  for (const dir of (process.env.PATH ?? '/usr/bin').split(delimiter)) {
    try {
      accessSync(join(dir, 'kubectl'), constants.X_OK);
      return join(dir, 'kubectl');
    } catch {
      // not in this directory
    }
  }
  return undefined;
}

const KUBECTL = findKubectl();
// In CI a missing kubectl is a failure (the test below), not a skip.
const describeRendered =
  KUBECTL !== undefined || process.env.CI === 'true' ? describe : describe.skip;
if (KUBECTL === undefined)
  process.stderr.write(
    `\n*** test/unit/deploy/kubernetes.spec.ts: kubectl not found on PATH; the manifest tests ` +
      `${process.env.CI === 'true' ? 'FAIL (CI)' : 'are SKIPPED'} ***\n\n`,
  );

async function render(dir: Kustomization): Promise<K8sObject[]> {
  if (KUBECTL === undefined) throw new Error('kubectl is not installed');
  const { stdout } = await run(KUBECTL, ['kustomize', join(DEPLOY_DIR, dir)], {
    maxBuffer: 16 * 1024 * 1024,
  });
  return parseYamlObjects(stdout);
}

function parseYamlObjects(text: string): K8sObject[] {
  return parseAllDocuments(text)
    .map((doc) => {
      if (doc.errors.length > 0) throw new Error(doc.errors[0]?.message);
      return doc.toJS() as unknown;
    })
    .filter((o): o is K8sObject => typeof o === 'object' && o !== null);
}

/** kubernetes-models' validate() for each kind: types, enums, formats, required fields. */
type ModelClass = new (data: never) => { validate(): void };
const MODELS = new Map<string, ModelClass>([
  ['v1/ConfigMap', ConfigMap],
  ['v1/Secret', Secret],
  ['v1/Service', Service],
  ['v1/ServiceAccount', ServiceAccount],
  ['apps/v1/Deployment', Deployment],
  ['policy/v1/PodDisruptionBudget', PodDisruptionBudget],
  ['networking.k8s.io/v1/NetworkPolicy', NetworkPolicy],
  ['networking.k8s.io/v1/Ingress', Ingress],
]);

/** Problems kubernetes-models reports for the object ([] when valid). */
function modelProblems(object: K8sObject): string[] {
  const Model = MODELS.get(`${object.apiVersion}/${object.kind}`);
  if (Model === undefined) return [`no model for ${object.apiVersion} ${object.kind}`];
  try {
    new Model(object as never).validate();
    return [];
  } catch (err) {
    return [err instanceof Error ? err.message : String(err)];
  }
}

// ---------------------------------------------------------------------------------------------
// The rendered objects, typed.

interface Rendered {
  readonly objects: K8sObject[];
  readonly deployment: IDeployment;
}

function only<T>(objects: readonly K8sObject[], kind: string): T {
  const found = objects.filter((o) => o.kind === kind);
  if (found.length !== 1) throw new Error(`expected one ${kind}, found ${found.length}`);
  return found[0] as unknown as T;
}

function all<T>(objects: readonly K8sObject[], kind: string): T[] {
  return objects.filter((o) => o.kind === kind) as unknown as T[];
}

function rendered(objects: K8sObject[]): Rendered {
  return { objects, deployment: only<IDeployment>(objects, 'Deployment') };
}

function podSpec(
  d: IDeployment,
): NonNullable<NonNullable<IDeployment['spec']>['template']['spec']> {
  const spec = d.spec?.template.spec;
  if (spec === undefined) throw new Error('Deployment has no pod spec');
  return spec;
}

function mainContainer(d: IDeployment): IContainer {
  const container = podSpec(d).containers.find((c) => c.name === 'portico');
  if (container === undefined) throw new Error('no container named portico');
  return container;
}

/** The container's environment as the process sees it: image defaults, envFrom, env. */
function containerEnv(r: Rendered, container: IContainer): Map<string, EnvSource> {
  const env = new Map<string, EnvSource>();
  for (const [name, value] of Object.entries(IMAGE_ENV)) env.set(name, { value, from: 'image' });
  for (const source of container.envFrom ?? []) {
    const ref = source.configMapRef?.name;
    const map = all<IConfigMap>(r.objects, 'ConfigMap').find((c) => c.metadata?.name === ref);
    for (const [name, value] of Object.entries(map?.data ?? {}))
      env.set(`${source.prefix ?? ''}${name}`, { value, from: 'configMap' });
    if (source.secretRef !== undefined) env.set('<secretRef>', { from: 'secret' });
  }
  for (const e of container.env ?? []) {
    if (e.valueFrom?.secretKeyRef !== undefined) env.set(e.name, { from: 'secret' });
    else env.set(e.name, { value: e.value ?? '', from: 'env' });
  }
  return env;
}

interface EnvSource {
  readonly value?: string;
  readonly from: 'image' | 'configMap' | 'env' | 'secret';
}

function envValue(r: Rendered, name: string): string | undefined {
  return containerEnv(r, mainContainer(r.deployment)).get(name)?.value;
}

/** Bytes in a Kubernetes quantity (`1Gi`, `512Mi`, `1G`, `1e9`). */
function quantityBytes(quantity: string | number | undefined): number | undefined {
  if (quantity === undefined) return undefined;
  const match = /^([0-9.e+]+)(Ki|Mi|Gi|Ti|k|M|G|T)?$/.exec(String(quantity));
  if (match === null) return undefined;
  const units: Record<string, number> = {
    Ki: 2 ** 10,
    Mi: 2 ** 20,
    Gi: 2 ** 30,
    Ti: 2 ** 40,
    k: 1e3,
    M: 1e6,
    G: 1e9,
    T: 1e12,
  };
  return Number(match[1]) * (match[2] === undefined ? 1 : (units[match[2]] ?? NaN));
}

/** The container port a probe, Service or NetworkPolicy port means (by name or number). */
function resolvesToPort(port: IIntOrString | undefined, container: IContainer): number | undefined {
  if (port === undefined) return undefined;
  const found = (container.ports ?? []).find((p) => p.name === port || p.containerPort === port);
  return found?.containerPort;
}

function isSubset(
  selector: Readonly<Record<string, string>> | undefined,
  labels: Readonly<Record<string, string>> | undefined,
): boolean {
  const entries = Object.entries(selector ?? {});
  return entries.length > 0 && entries.every(([k, v]) => labels?.[k] === v);
}

/** Seconds the preStop hook waits: the `sleep` handler or `exec: [sleep, N]`. */
function preStopSeconds(container: IContainer): number | undefined {
  const preStop = container.lifecycle?.preStop;
  if (preStop?.sleep !== undefined) return preStop.sleep.seconds;
  const command = preStop?.exec?.command ?? [];
  if (command.length === 2 && /(^|\/)sleep$/.test(command[0] ?? '')) return Number(command[1]);
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// The requirements, as checks that list what is wrong (empty when all is well).

type Check = (r: Rendered) => string[];

const checks: Record<string, Check> = {
  /** The "restricted" Pod Security Standard, on the pod and on every container. */
  restrictedPodSecurity(r) {
    const problems: string[] = [];
    const pod = podSpec(r.deployment);
    const psc = pod.securityContext ?? {};
    if (pod.hostNetwork === true || pod.hostPID === true || pod.hostIPC === true)
      problems.push('pod shares a host namespace');
    for (const v of pod.volumes ?? []) {
      const types = Object.keys(v).filter((k) => k !== 'name');
      if (!types.every((t) => RESTRICTED_VOLUME_TYPES.has(t)))
        problems.push(`volume ${v.name} is of a type "restricted" forbids (${types.join(', ')})`);
    }
    const isUid = (uid: unknown): boolean => Number.isInteger(uid) && (uid as number) > 0;
    for (const c of [...pod.containers, ...(pod.initContainers ?? [])]) {
      const sc = c.securityContext ?? {};
      const at = `container ${c.name}`;
      if ((sc.runAsNonRoot ?? psc.runAsNonRoot) !== true) problems.push(`${at}: runAsNonRoot`);
      if (!isUid(sc.runAsUser ?? psc.runAsUser)) problems.push(`${at}: numeric runAsUser > 0`);
      if (sc.allowPrivilegeEscalation !== false)
        problems.push(`${at}: allowPrivilegeEscalation false`);
      if (sc.privileged === true) problems.push(`${at}: privileged`);
      if (sc.readOnlyRootFilesystem !== true) problems.push(`${at}: readOnlyRootFilesystem`);
      if (!(sc.capabilities?.drop ?? []).includes('ALL')) problems.push(`${at}: drop ALL`);
      if ((sc.capabilities?.add ?? []).some((cap) => cap !== 'NET_BIND_SERVICE'))
        problems.push(`${at}: adds capabilities`);
      const seccomp = (sc.seccompProfile ?? psc.seccompProfile)?.type;
      if (seccomp !== 'RuntimeDefault' && seccomp !== 'Localhost')
        problems.push(`${at}: seccompProfile RuntimeDefault`);
      if ((c.ports ?? []).some((p) => p.hostPort !== undefined)) problems.push(`${at}: hostPort`);
    }
    if (psc.seccompProfile?.type !== 'RuntimeDefault')
      problems.push('pod: seccompProfile RuntimeDefault');
    if (psc.runAsNonRoot !== true) problems.push('pod: runAsNonRoot');
    return problems;
  },

  /** No API token in the pod: Portico never talks to the Kubernetes API. */
  noServiceAccountToken(r) {
    const problems: string[] = [];
    const pod = podSpec(r.deployment);
    if (pod.automountServiceAccountToken !== false)
      problems.push('pod: automountServiceAccountToken is not false');
    const account = all<IServiceAccount>(r.objects, 'ServiceAccount').find(
      (a) => a.metadata?.name === pod.serviceAccountName,
    );
    if (account === undefined)
      problems.push(`ServiceAccount ${pod.serviceAccountName ?? '(default)'} is not rendered`);
    else if (account.automountServiceAccountToken !== false)
      problems.push('ServiceAccount: automountServiceAccountToken is not false');
    return problems;
  },

  /** Startup and readiness on /readyz, liveness on /healthz (never on plugins), on the app port. */
  probes(r) {
    const problems: string[] = [];
    const c = mainContainer(r.deployment);
    const appPort = Number(envValue(r, 'PORT'));
    const expect = {
      startupProbe: '/readyz',
      readinessProbe: '/readyz',
      livenessProbe: '/healthz',
    } as const;
    for (const [probe, path] of Object.entries(expect) as [keyof typeof expect, string][]) {
      const get = c[probe]?.httpGet;
      if (get === undefined) {
        problems.push(`${probe}: no httpGet`);
        continue;
      }
      if (get.path !== path) problems.push(`${probe}: path ${get.path ?? '-'}, not ${path}`);
      if (resolvesToPort(get.port, c) !== appPort)
        problems.push(`${probe}: port ${String(get.port)} is not the app port ${appPort}`);
    }
    if (!(c.ports ?? []).some((p) => p.containerPort === appPort))
      problems.push(`no container port for PORT=${appPort}`);
    return problems;
  },

  /** preStop sleep, then SHUTDOWN_GRACE_MS, then stopping plugins, all within the grace period. */
  terminationBudget(r) {
    const problems: string[] = [];
    const c = mainContainer(r.deployment);
    const preStop = preStopSeconds(c);
    if (preStop === undefined || !(preStop >= 5))
      return ['preStop: no sleep of at least 5 s (endpoint-removal race)'];
    const grace = Number(envValue(r, 'SHUTDOWN_GRACE_MS') ?? 10000) / 1000;
    const pluginStop = (DEFAULT_POLICY.killGraceMs + DEFAULT_TRACKER_OPTIONS.sweepTimeoutMs) / 1000;
    const needed = preStop + grace + pluginStop;
    const period = podSpec(r.deployment).terminationGracePeriodSeconds ?? 30;
    if (period < needed)
      problems.push(
        `terminationGracePeriodSeconds ${period} < preStop ${preStop} + SHUTDOWN_GRACE_MS ` +
          `${grace} + plugin stop ${pluginStop}`,
      );
    return problems;
  },

  /** Requests set; a memory limit; V8's heap a share of it that leaves room for plugins. */
  memory(r) {
    const problems: string[] = [];
    const resources = mainContainer(r.deployment).resources;
    const limit = quantityBytes(resources?.limits?.memory);
    const request = quantityBytes(resources?.requests?.memory);
    if (resources?.requests?.cpu === undefined) problems.push('no CPU request');
    if (request === undefined) problems.push('no memory request');
    if (limit === undefined) return [...problems, 'no memory limit'];
    if (request !== undefined && request > limit) problems.push('memory request above limit');
    const heap = /--max-old-space-size=(\d+)/.exec(envValue(r, 'NODE_OPTIONS') ?? '');
    if (heap === null) return [...problems, 'NODE_OPTIONS sets no --max-old-space-size'];
    const heapBytes = Number(heap[1]) * 2 ** 20;
    if (heapBytes > MAX_HEAP_SHARE * limit)
      problems.push(`heap ${heap[1]} MiB is over ${MAX_HEAP_SHARE * 100}% of the memory limit`);
    if (Number(heap[1]) < MIN_HEAP_MIB) problems.push(`heap ${heap[1]} MiB < ${MIN_HEAP_MIB}`);
    return problems;
  },

  /** Every variable is one Portico reads, and the whole environment passes loadConfig. */
  environment(r) {
    const problems: string[] = [];
    const env = containerEnv(r, mainContainer(r.deployment));
    const known = new Set<string>(CONFIG_KEYS);
    for (const name of env.keys())
      if (!known.has(name) && !RUNTIME_ENV.has(name)) problems.push(`unknown variable ${name}`);
    for (const key of ['JWT_SECRET', 'SECRETS_KEY'])
      if (env.has(key) && env.get(key)?.from !== 'secret')
        problems.push(`${key} is not taken from a Secret`);
    if (env.get('SECRETS_KEY') === undefined) problems.push('SECRETS_KEY is not set');
    const plain: Record<string, string> = {};
    for (const [name, source] of env) if (source.value !== undefined) plain[name] = source.value;
    try {
      // Stand-ins for the Secret's values: production requires them.
      loadConfig({ ...plain, JWT_SECRET: 'x'.repeat(32), SECRETS_KEY: 'A'.repeat(43) + '=' });
    } catch (err) {
      problems.push(`loadConfig: ${(err as Error).message}`);
    }
    return problems;
  },

  /** DATA_DIR and /tmp are writable (emptyDir): the root filesystem is read-only. */
  writablePaths(r) {
    const c = mainContainer(r.deployment);
    const volumes = podSpec(r.deployment).volumes ?? [];
    const dataDir = envValue(r, 'DATA_DIR') ?? '';
    return [dataDir, ...WRITABLE_PATHS]
      .filter((path) => {
        const mount = (c.volumeMounts ?? []).find((m) => m.mountPath === path);
        const volume = volumes.find((v) => v.name === mount?.name);
        return volume?.emptyDir === undefined || mount?.readOnly === true;
      })
      .map((path) => `${path} is not a writable emptyDir mount`);
  },

  /** PLUGINS_CONFIG names a key of a ConfigMap mounted as a directory (no subPath), valid. */
  pluginsConfig(r) {
    const file = envValue(r, 'PLUGINS_CONFIG');
    if (file === undefined) return ['PLUGINS_CONFIG is not set'];
    const dir = posix.dirname(file);
    const c = mainContainer(r.deployment);
    const mounts = (c.volumeMounts ?? []).filter(
      (m) => m.mountPath === dir || file.startsWith(`${m.mountPath}/`),
    );
    if (mounts.length !== 1 || mounts[0]?.mountPath !== dir)
      return [`PLUGINS_CONFIG ${file} is not directly inside one volume mount`];
    const mount = mounts[0];
    const problems: string[] = [];
    if (mount.subPath !== undefined || mount.subPathExpr !== undefined)
      problems.push('the PLUGINS_CONFIG mount uses subPath: it would never be updated');
    const volume = (podSpec(r.deployment).volumes ?? []).find((v) => v.name === mount.name);
    const name = volume?.configMap?.name;
    const map = all<IConfigMap>(r.objects, 'ConfigMap').find((m) => m.metadata?.name === name);
    const key = posix.basename(file);
    const text = map?.data?.[key];
    if (volume?.configMap === undefined || text === undefined)
      return [...problems, `no rendered ConfigMap key ${key} behind ${dir}`];
    if ((volume.configMap.items ?? []).some((i) => i.key !== key || i.path !== key))
      problems.push(`the ConfigMap volume does not map ${key} to ${key}`);
    if (/-[a-z0-9]{10}$/.test(name ?? ''))
      problems.push(
        `ConfigMap ${name ?? ''} has a hash suffix: an edit would roll pods, not reload`,
      );
    const parsed = parsePluginsConfig(Buffer.from(text));
    if ('error' in parsed) problems.push(`${key} is invalid: ${parsed.error}`);
    return problems;
  },

  /** PLUGIN_SECRETS_DIR is a read-only Secret mount laid out `<plugin>/<KEY>`. */
  pluginSecrets(r) {
    const dir = envValue(r, 'PLUGIN_SECRETS_DIR');
    if (dir === undefined) return ['PLUGIN_SECRETS_DIR is not set'];
    const c = mainContainer(r.deployment);
    const mount = (c.volumeMounts ?? []).find((m) => m.mountPath === dir);
    if (mount === undefined) return [`nothing is mounted at PLUGIN_SECRETS_DIR ${dir}`];
    const problems: string[] = [];
    if (mount.subPath !== undefined) problems.push('the secrets mount uses subPath');
    if (mount.readOnly !== true) problems.push('the secrets mount is not read-only');
    const volume = (podSpec(r.deployment).volumes ?? []).find((v) => v.name === mount.name);
    const items = secretItems(volume);
    if (items === undefined) return [...problems, 'PLUGIN_SECRETS_DIR is not a Secret volume'];
    for (const { path } of items) {
      const [plugin, key, ...rest] = path.split('/');
      if (rest.length > 0 || !isPluginName(plugin ?? '') || !SECRET_KEY_PATTERN.test(key ?? ''))
        problems.push(`secret item path ${path} is not <plugin>/<KEY>`);
    }
    return problems;
  },

  /** The Service selects the pods and targets the app port. */
  service(r) {
    const problems: string[] = [];
    const svc = only<IService>(r.objects, 'Service');
    const labels = r.deployment.spec?.template.metadata?.labels;
    if (!isSubset(svc.spec?.selector, labels)) problems.push('Service selector misses the pods');
    for (const p of svc.spec?.ports ?? [])
      if (resolvesToPort(p.targetPort ?? p.port, mainContainer(r.deployment)) === undefined)
        problems.push(`Service port ${p.port} targets no container port`);
    if ((svc.spec?.ports ?? []).length === 0) problems.push('Service has no port');
    return problems;
  },

  /** Every selector (Deployment, PDB, NetworkPolicy, spread) matches the pod template. */
  selectors(r) {
    const labels = r.deployment.spec?.template.metadata?.labels;
    const named: [string, Record<string, string> | undefined][] = [
      ['Deployment', r.deployment.spec?.selector.matchLabels],
      ...all<IPodDisruptionBudget>(r.objects, 'PodDisruptionBudget').map(
        (p): [string, Record<string, string> | undefined] => [
          'PodDisruptionBudget',
          p.spec?.selector?.matchLabels,
        ],
      ),
      ...all<INetworkPolicy>(r.objects, 'NetworkPolicy').map(
        (n): [string, Record<string, string> | undefined] => [
          'NetworkPolicy',
          n.spec?.podSelector.matchLabels,
        ],
      ),
      ...(podSpec(r.deployment).topologySpreadConstraints ?? []).map(
        (t): [string, Record<string, string> | undefined] => [
          `topologySpread ${t.topologyKey}`,
          t.labelSelector?.matchLabels,
        ],
      ),
    ];
    return named.filter(([, sel]) => !isSubset(sel, labels)).map(([n]) => `${n} misses the pods`);
  },

  /** Drains take one pod at a time, and a single replica can still be drained. */
  disruptionBudget(r) {
    const pdb = only<IPodDisruptionBudget>(r.objects, 'PodDisruptionBudget');
    if (pdb.spec?.maxUnavailable !== 1 || pdb.spec.minAvailable !== undefined)
      return ['PodDisruptionBudget is not maxUnavailable: 1'];
    return [];
  },

  /** In: only the app port. Out: DNS (and HTTPS, commented in the file). */
  networkPolicy(r) {
    const problems: string[] = [];
    const np = only<INetworkPolicy>(r.objects, 'NetworkPolicy');
    const c = mainContainer(r.deployment);
    const appPort = Number(envValue(r, 'PORT'));
    const types = np.spec?.policyTypes ?? [];
    if (!types.includes('Ingress') || !types.includes('Egress'))
      problems.push('NetworkPolicy does not govern both Ingress and Egress');
    const ingress = np.spec?.ingress ?? [];
    if (ingress.length === 0) problems.push('NetworkPolicy admits no traffic at all');
    for (const rule of ingress) {
      const ports = rule.ports ?? [];
      if (ports.length === 0) problems.push('an ingress rule allows every port');
      for (const p of ports)
        if (resolvesToPort(p.port, c) !== appPort || p.endPort !== undefined)
          problems.push(`ingress allows port ${String(p.port)}, not only the app port`);
    }
    const dns = (np.spec?.egress ?? []).some((rule) =>
      (rule.ports ?? []).some((p) => p.port === 53 && p.protocol === 'UDP'),
    );
    if (!dns) problems.push('egress has no DNS (UDP 53)');
    return problems;
  },

  /** WebSocket timeouts of an hour or more; backends exist; nothing internal is exposed. */
  ingress(r) {
    const problems: string[] = [];
    const ing = only<IIngress>(r.objects, 'Ingress');
    const svc = only<IService>(r.objects, 'Service');
    for (const key of ['proxy-read-timeout', 'proxy-send-timeout']) {
      const value = Number(ing.metadata?.annotations?.[`nginx.ingress.kubernetes.io/${key}`]);
      if (!(value >= MIN_WS_TIMEOUT_S)) problems.push(`${key} is below ${MIN_WS_TIMEOUT_S} s`);
    }
    const paths = (ing.spec?.rules ?? []).flatMap((rule) => rule.http?.paths ?? []);
    if (paths.length === 0) problems.push('Ingress routes nothing');
    for (const p of paths) {
      const backend = p.backend.service;
      const port = (svc.spec?.ports ?? []).find(
        (sp) => sp.name === backend?.port?.name || sp.port === backend?.port?.number,
      );
      if (backend?.name !== svc.metadata?.name || port === undefined)
        problems.push(`Ingress path ${p.path ?? '/'} has no backend Service port`);
      const prefix = p.path ?? '/';
      // An Exact path routes that path alone (the console's page at `/`).
      const exposes =
        p.pathType === 'Exact'
          ? INTERNAL_PATHS.includes(prefix)
          : INTERNAL_PATHS.some((internal) => internal.startsWith(prefix) || prefix === '/');
      if (exposes) problems.push(`Ingress path ${prefix} exposes ${INTERNAL_PATHS.join(', ')}`);
    }
    return problems;
  },
};

/** Only the ha overlay's promises. */
const haChecks: Record<string, Check> = {
  replicas(r) {
    return r.deployment.spec?.replicas === 3 ? [] : ['replicas is not 3'];
  },

  rollingUpdate(r) {
    const s = r.deployment.spec?.strategy;
    return s?.type === 'RollingUpdate' &&
      s.rollingUpdate?.maxUnavailable === 0 &&
      s.rollingUpdate.maxSurge === 1
      ? []
      : ['strategy is not RollingUpdate with maxUnavailable 0, maxSurge 1'];
  },

  spreadAcrossNodes(r) {
    const spread = podSpec(r.deployment).topologySpreadConstraints ?? [];
    return spread.some((t) => t.topologyKey === 'kubernetes.io/hostname' && t.maxSkew === 1)
      ? []
      : ['no topology spread across nodes (kubernetes.io/hostname, maxSkew 1)'];
  },
};

/** overlays/ha-database: state in PostgreSQL instead of the declared file. */
const databaseChecks: Record<string, Check> = {
  /** DATABASE_URL from a Secret (it holds a password), and no PLUGINS_CONFIG (exclusive). */
  database(r) {
    const env = containerEnv(r, mainContainer(r.deployment));
    const problems: string[] = [];
    if (env.get('DATABASE_URL')?.from !== 'secret')
      problems.push('DATABASE_URL is not taken from a Secret');
    if (env.has('PLUGINS_CONFIG')) problems.push('PLUGINS_CONFIG is set too (they are exclusive)');
    const mounts = mainContainer(r.deployment).volumeMounts ?? [];
    const volumes = podSpec(r.deployment).volumes ?? [];
    if (volumes.some((v) => v.configMap !== undefined && !mounts.some((m) => m.name === v.name)))
      problems.push('a ConfigMap volume is left that nothing mounts');
    if (all<IConfigMap>(r.objects, 'ConfigMap').some((m) => m.metadata?.name === 'portico-plugins'))
      problems.push('the PLUGINS_CONFIG ConfigMap is still deployed');
    return problems;
  },

  /** The pod may reach PostgreSQL: an egress rule for TCP 5432. */
  databaseEgress(r) {
    const policy = only<INetworkPolicy>(r.objects, 'NetworkPolicy');
    const open = (policy.spec?.egress ?? []).some((rule) =>
      (rule.ports ?? []).some((p) => p.port === 5432 && (p.protocol ?? 'TCP') === 'TCP'),
    );
    return open ? [] : ['the NetworkPolicy allows no egress to PostgreSQL (TCP 5432)'];
  },
};

function checksFor(dir: Kustomization): Record<string, Check> {
  if (dir === 'overlays/ha') return { ...checks, ...haChecks };
  if (dir === 'overlays/ha-database') {
    // Every check but the declared file's.
    const common = Object.fromEntries(
      Object.entries(checks).filter(([name]) => name !== 'pluginsConfig'),
    );
    return { ...common, ...haChecks, ...databaseChecks };
  }
  return checks;
}

function violations(dir: Kustomization, r: Rendered): string[] {
  return Object.entries(checksFor(dir)).flatMap(([name, check]) =>
    check(r).map((p) => `${name}: ${p}`),
  );
}

/** Sets a variable of the main container to a plain value (whatever it was taken from). */
function setEnv(r: Rendered, name: string, value: string): void {
  const env = (mainContainer(r.deployment).env ??= []);
  const found = env.find((e) => e.name === name);
  if (found === undefined) env.push({ name, value });
  else {
    delete found.valueFrom;
    found.value = value;
  }
}

/** The Deployment's PLUGIN_SECRETS_DIR volume items (Secret or projected Secret sources). */
function secretItems(
  volume: NonNullable<ReturnType<typeof podSpec>['volumes']>[number] | undefined,
): { key: string; path: string }[] | undefined {
  if (volume?.secret !== undefined) return volume.secret.items ?? [];
  const sources = volume?.projected?.sources;
  if (sources === undefined || sources.some((s) => s.secret === undefined)) return undefined;
  return sources.flatMap((s) => s.secret?.items ?? []);
}

// ---------------------------------------------------------------------------------------------

describeRendered('deploy/kubernetes', () => {
  const renders = new Map<Kustomization, K8sObject[]>();
  let schema: K8sSchema;

  beforeAll(async () => {
    schema = K8sSchema.load();
    for (const dir of KUSTOMIZATIONS) renders.set(dir, await render(dir));
  }, 60_000);

  const objectsOf = (dir: Kustomization): K8sObject[] => {
    const objects = renders.get(dir);
    if (objects === undefined) throw new Error(`${dir} was not rendered`);
    return objects;
  };
  const copyOf = (dir: Kustomization): Rendered => rendered(structuredClone(objectsOf(dir)));
  const examples = (): K8sObject[] =>
    EXAMPLES.flatMap((f) => parseYamlObjects(readFileSync(join(DEPLOY_DIR, f), 'utf8')));

  it('kubectl is installed (CI must not skip these tests)', () => {
    expect(KUBECTL).toBeDefined();
  });

  describe.each(KUSTOMIZATIONS)('kubectl kustomize %s', (dir) => {
    it('renders every kind the deployment needs, once', () => {
      const kinds = objectsOf(dir)
        .map((o) => o.kind)
        .sort();
      // The PLUGINS_CONFIG ConfigMap, except where state comes from the database.
      const configMaps = dir === 'overlays/ha-database' ? 1 : 2;
      expect(kinds).toEqual([
        ...Array<string>(configMaps).fill('ConfigMap'),
        'Deployment',
        'Ingress',
        'NetworkPolicy',
        'PodDisruptionBudget',
        'Service',
        'ServiceAccount',
      ]);
    });

    it('every object passes kubernetes-models validation', () => {
      const problems = objectsOf(dir).flatMap((o) =>
        modelProblems(o).map((p) => `${o.kind}: ${p}`),
      );
      expect(problems).toEqual([]);
    });

    it('no object has a field its kind does not know (strict check)', () => {
      const unknown = objectsOf(dir).flatMap((o) =>
        schema.unknownFields(o).map((f) => `${o.kind}: ${f}`),
      );
      expect(unknown).toEqual([]);
    });

    it('meets every requirement of the deployment', () => {
      expect(violations(dir, rendered(objectsOf(dir)))).toEqual([]);
    });
  });

  it('the Secret examples pass kubernetes-models validation and the strict check', () => {
    const objects = examples();
    expect(objects.map((o) => o.kind)).toEqual(['Secret', 'Secret', 'Secret']);
    const problems = objects.flatMap((o) => [...modelProblems(o), ...schema.unknownFields(o)]);
    expect(problems).toEqual([]);
  });

  it('the key placeholders in the Secret example are refused by Portico (a known key must never run)', () => {
    const keys = examples().find((s) => (s.metadata as { name?: string }).name === 'portico-keys')
      ?.stringData as Record<string, string>;
    for (const name of ['JWT_SECRET', 'SECRETS_KEY'])
      expect(() =>
        loadConfig({
          NODE_ENV: 'production',
          JWT_SECRET: 'x'.repeat(32),
          SECRETS_KEY: 'A'.repeat(43) + '=',
          [name]: keys[name],
        }),
      ).toThrow(name);
  });

  it.each(KUSTOMIZATIONS)(
    'the Secret examples hold every key the Deployment of %s reads',
    (dir) => {
      const r = rendered(objectsOf(dir));
      const c = mainContainer(r.deployment);
      const secrets = new Map(
        examples().map((s) => [
          String((s.metadata as { name?: string }).name),
          Object.keys({ ...(s.stringData as object), ...(s.data as object) }),
        ]),
      );
      const wanted = [
        ...(c.env ?? []).flatMap((e) => {
          const ref = e.valueFrom?.secretKeyRef;
          return ref === undefined ? [] : [`${ref.name}/${ref.key}`];
        }),
        ...(podSpec(r.deployment).volumes ?? []).flatMap((v) =>
          (v.projected?.sources ?? []).flatMap((s) =>
            (s.secret?.items ?? []).map((i) => `${s.secret?.name ?? ''}/${i.key}`),
          ),
        ),
      ];
      expect(wanted.length).toBeGreaterThan(2);
      // An optional key that only some setups need (OIDC_CLIENT_SECRET) may be shown commented out.
      const optional = new Set(
        (c.env ?? []).flatMap((e) => {
          const ref = e.valueFrom?.secretKeyRef;
          return ref?.optional === true ? [`${ref.name}/${ref.key}`] : [];
        }),
      );
      const exampleText = EXAMPLES.map((f) => readFileSync(join(DEPLOY_DIR, f), 'utf8')).join('\n');
      const missing = wanted.filter((w) => {
        const [name, key] = w.split('/') as [string, string];
        if ((secrets.get(name) ?? []).includes(key)) return false;
        return !(optional.has(w) && new RegExp(`^\\s*#\\s*${key}:`, 'm').test(exampleText));
      });
      expect(missing).toEqual([]);
    },
  );

  describe('the strict check rejects unknown fields', () => {
    const cases: [string, (r: Rendered) => void, string][] = [
      [
        'a misspelt probe (readinessProbes)',
        (r) => Object.assign(mainContainer(r.deployment), { readinessProbes: {} }),
        'spec.template.spec.containers[0].readinessProbes',
      ],
      [
        'a typo deep in a securityContext (runAsNonroot)',
        (r) =>
          Object.assign(mainContainer(r.deployment).securityContext ?? {}, { runAsNonroot: true }),
        'spec.template.spec.containers[0].securityContext.runAsNonroot',
      ],
      [
        'a typo in a projected Secret item (paht)',
        (r) => {
          const source = podSpec(r.deployment).volumes?.find((v) => v.projected)?.projected
            ?.sources?.[0]?.secret?.items?.[0];
          Object.assign(source ?? {}, { paht: 'x' });
        },
        '.secret.items[0].paht',
      ],
      [
        'a field at the top of a Deployment spec (replica)',
        (r) => Object.assign(r.deployment.spec ?? {}, { replica: 3 }),
        'spec.replica',
      ],
      [
        'lables instead of labels in metadata',
        (r) => Object.assign(r.deployment.metadata ?? {}, { lables: {} }),
        'metadata.lables',
      ],
    ];
    it.each(cases)('%s', (_title, mutate, path) => {
      const r = copyOf('overlays/ha');
      expect(schema.unknownFields(r.deployment as unknown as K8sObject)).toEqual([]);
      mutate(r);
      const found = schema.unknownFields(r.deployment as unknown as K8sObject);
      expect(found).toHaveLength(1);
      expect(found[0]).toContain(path);
      // kubernetes-models alone lets it through: that is why the strict check exists.
      expect(modelProblems(r.deployment as unknown as K8sObject)).toEqual([]);
    });

    it('keys of maps (labels, annotations, ConfigMap data) are free', () => {
      const r = copyOf('base');
      Object.assign(r.deployment.metadata?.labels ?? {}, { 'example.com/anything': 'x' });
      const ingress = only<IIngress>(r.objects, 'Ingress');
      Object.assign(ingress.metadata?.annotations ?? {}, { 'example.com/note': 'x' });
      const map = all<IConfigMap>(r.objects, 'ConfigMap')[0];
      Object.assign(map?.data ?? {}, { ANY_KEY: 'x' });
      const found = [r.deployment, ingress, map].flatMap((o) =>
        schema.unknownFields(o as unknown as K8sObject),
      );
      expect(found).toEqual([]);
    });

    it('an object of a kind it has no schema for is refused', () => {
      expect(schema.unknownFields({ apiVersion: 'v1', kind: 'Pod' })).toEqual([
        '<no schema for v1 Pod>',
      ]);
    });
  });

  it('kubernetes-models validation rejects a value of the wrong type', () => {
    const r = copyOf('base');
    Object.assign(r.deployment.spec ?? {}, { replicas: 'three' });
    expect(modelProblems(r.deployment as unknown as K8sObject)).not.toEqual([]);
  });

  describe('each requirement check fails on a manifest that breaks it', () => {
    type Mutation = (r: Rendered) => void;
    const container = (r: Rendered): IContainer => mainContainer(r.deployment);
    const cases: [string, Mutation, RegExp][] = [
      [
        'container may escalate privileges',
        (r) => {
          container(r).securityContext = {
            ...container(r).securityContext,
            allowPrivilegeEscalation: true,
          };
        },
        /restrictedPodSecurity: container portico: allowPrivilegeEscalation/,
      ],
      [
        'root filesystem writable',
        (r) => delete container(r).securityContext?.readOnlyRootFilesystem,
        /restrictedPodSecurity: .*readOnlyRootFilesystem/,
      ],
      [
        'capabilities not dropped',
        (r) => delete container(r).securityContext?.capabilities,
        /restrictedPodSecurity: .*drop ALL/,
      ],
      [
        'runs as uid 0',
        (r) => {
          Object.assign(container(r).securityContext ?? {}, { runAsUser: 0 });
        },
        /restrictedPodSecurity: .*numeric runAsUser/,
      ],
      [
        'no seccomp profile',
        (r) => {
          delete podSpec(r.deployment).securityContext?.seccompProfile;
          delete container(r).securityContext?.seccompProfile;
        },
        /restrictedPodSecurity: .*seccompProfile RuntimeDefault/,
      ],
      [
        'a hostPath volume',
        (r) => podSpec(r.deployment).volumes?.push({ name: 'host', hostPath: { path: '/' } }),
        /restrictedPodSecurity: volume host/,
      ],
      [
        'the token is mounted',
        (r) => {
          podSpec(r.deployment).automountServiceAccountToken = true;
        },
        /noServiceAccountToken: pod/,
      ],
      [
        'the ServiceAccount mounts its token',
        (r) => {
          only<IServiceAccount>(r.objects, 'ServiceAccount').automountServiceAccountToken = true;
        },
        /noServiceAccountToken: ServiceAccount/,
      ],
      [
        'liveness on /readyz (plugin health)',
        (r) => {
          const get = container(r).livenessProbe?.httpGet;
          if (get !== undefined) get.path = '/readyz';
        },
        /probes: livenessProbe: path \/readyz/,
      ],
      [
        'readiness on another port',
        (r) => {
          const get = container(r).readinessProbe?.httpGet;
          if (get !== undefined) get.port = 9090;
        },
        /probes: readinessProbe: port 9090/,
      ],
      ['no startup probe', (r) => delete container(r).startupProbe, /probes: startupProbe/],
      ['no preStop sleep', (r) => delete container(r).lifecycle, /terminationBudget: preStop/],
      [
        'grace period shorter than the shutdown',
        (r) => {
          podSpec(r.deployment).terminationGracePeriodSeconds = 25;
        },
        /terminationBudget: terminationGracePeriodSeconds 25/,
      ],
      [
        'SHUTDOWN_GRACE_MS raised without the grace period',
        (r) => setEnv(r, 'SHUTDOWN_GRACE_MS', '60000'),
        /terminationBudget: .*SHUTDOWN_GRACE_MS 60/,
      ],
      [
        'exec sleep form is understood (and still checked)',
        (r) => {
          container(r).lifecycle = { preStop: { exec: { command: ['sleep', '2'] } } };
        },
        /terminationBudget: preStop/,
      ],
      [
        'heap as large as the limit',
        (r) => setEnv(r, 'NODE_OPTIONS', '--max-old-space-size=1024'),
        /memory: heap 1024 MiB is over/,
      ],
      ['no heap size', (r) => setEnv(r, 'NODE_OPTIONS', ''), /memory: NODE_OPTIONS sets no/],
      ['no memory limit', (r) => delete container(r).resources?.limits, /memory: no memory limit/],
      [
        'a misspelt variable',
        (r) => setEnv(r, 'SHUTDOWN_GRACE', '10000'),
        /environment: unknown variable SHUTDOWN_GRACE/,
      ],
      [
        'an invalid value',
        (r) => setEnv(r, 'LOG_LEVEL', 'loud'),
        /environment: loadConfig: [\s\S]*LOG_LEVEL/,
      ],
      [
        'SECRETS_KEY as a literal',
        (r) => {
          const env = container(r).env ?? [];
          const i = env.findIndex((e) => e.name === 'SECRETS_KEY');
          env[i] = { name: 'SECRETS_KEY', value: 'A'.repeat(43) + '=' };
        },
        /environment: SECRETS_KEY is not taken from a Secret/,
      ],
      [
        'DATA_DIR not writable',
        (r) => {
          const v = podSpec(r.deployment).volumes?.find((x) => x.name === 'data');
          if (v !== undefined) {
            delete v.emptyDir;
            v.configMap = { name: 'x' };
          }
        },
        /writablePaths: \/var\/lib\/portico/,
      ],
      [
        '/tmp not mounted',
        (r) => {
          container(r).volumeMounts = container(r).volumeMounts?.filter(
            (m) => m.mountPath !== '/tmp',
          );
        },
        /writablePaths: \/tmp/,
      ],
      [
        'the plugins config mounted with subPath',
        (r) => {
          const m = container(r).volumeMounts?.find((x) => x.mountPath === '/etc/portico/config');
          if (m !== undefined) {
            m.mountPath = '/etc/portico/config/plugins.yaml';
            m.subPath = 'plugins.yaml';
          }
        },
        /pluginsConfig: PLUGINS_CONFIG .* is not directly inside one volume mount/,
      ],
      [
        'PLUGINS_CONFIG pointing at a key the ConfigMap lacks',
        (r) => setEnv(r, 'PLUGINS_CONFIG', '/etc/portico/config/plugins.yml'),
        /pluginsConfig: no rendered ConfigMap key plugins.yml/,
      ],
      [
        'an invalid plugins.yaml',
        (r) => {
          const map = all<IConfigMap>(r.objects, 'ConfigMap').find(
            (m) => m.data?.['plugins.yaml'] !== undefined,
          );
          if (map?.data !== undefined)
            map.data['plugins.yaml'] = 'plugins:\n  echo:\n    enable: true\n';
        },
        /pluginsConfig: plugins.yaml is invalid/,
      ],
      [
        'a plugin secret item not laid out <plugin>/<KEY>',
        (r) => {
          const items = secretItems(
            podSpec(r.deployment).volumes?.find((v) => v.name === 'plugin-secrets'),
          );
          if (items?.[0] !== undefined) items[0].path = 'GITHUB_TOKEN';
        },
        /pluginSecrets: secret item path GITHUB_TOKEN/,
      ],
      [
        'the secrets mount writable',
        (r) => {
          const dir = envValue(r, 'PLUGIN_SECRETS_DIR');
          const m = container(r).volumeMounts?.find((x) => x.mountPath === dir);
          if (m !== undefined) delete m.readOnly;
        },
        /pluginSecrets: the secrets mount is not read-only/,
      ],
      [
        'a Service selecting other pods',
        (r) => {
          const svc = only<IService>(r.objects, 'Service');
          if (svc.spec !== undefined) svc.spec.selector = { app: 'other' };
        },
        /service: Service selector misses the pods/,
      ],
      [
        'a Service targeting a port the container lacks',
        (r) => {
          const port = only<IService>(r.objects, 'Service').spec?.ports?.[0];
          if (port !== undefined) port.targetPort = 'web';
        },
        /service: Service port 80 targets no container port/,
      ],
      [
        'a PDB with another selector',
        (r) => {
          const pdb = only<IPodDisruptionBudget>(r.objects, 'PodDisruptionBudget');
          if (pdb.spec?.selector !== undefined) pdb.spec.selector.matchLabels = { app: 'x' };
        },
        /selectors: PodDisruptionBudget misses the pods/,
      ],
      [
        'a PDB with minAvailable',
        (r) => {
          const pdb = only<IPodDisruptionBudget>(r.objects, 'PodDisruptionBudget');
          if (pdb.spec !== undefined) {
            delete pdb.spec.maxUnavailable;
            pdb.spec.minAvailable = 2;
          }
        },
        /disruptionBudget: PodDisruptionBudget is not maxUnavailable: 1/,
      ],
      [
        'a NetworkPolicy open on another port',
        (r) => {
          const rule = only<INetworkPolicy>(r.objects, 'NetworkPolicy').spec?.ingress?.[0];
          rule?.ports?.push({ port: 22, protocol: 'TCP' });
        },
        /networkPolicy: ingress allows port 22/,
      ],
      [
        'a NetworkPolicy ingress rule for every port',
        (r) => {
          const rule = only<INetworkPolicy>(r.objects, 'NetworkPolicy').spec?.ingress?.[0];
          if (rule !== undefined) delete rule.ports;
        },
        /networkPolicy: an ingress rule allows every port/,
      ],
      [
        'a NetworkPolicy without DNS',
        (r) => {
          const spec = only<INetworkPolicy>(r.objects, 'NetworkPolicy').spec;
          if (spec !== undefined) spec.egress = spec.egress?.slice(1);
        },
        /networkPolicy: egress has no DNS/,
      ],
      [
        'a NetworkPolicy selecting other pods',
        (r) => {
          const spec = only<INetworkPolicy>(r.objects, 'NetworkPolicy').spec;
          if (spec !== undefined) spec.podSelector = { matchLabels: { app: 'x' } };
        },
        /selectors: NetworkPolicy misses the pods/,
      ],
      [
        'Ingress timeouts at nginx defaults',
        (r) => {
          const a = only<IIngress>(r.objects, 'Ingress').metadata?.annotations ?? {};
          a['nginx.ingress.kubernetes.io/proxy-read-timeout'] = '60';
        },
        /ingress: proxy-read-timeout is below 3600/,
      ],
      [
        'Ingress exposing everything, /metrics included',
        (r) => {
          const path = only<IIngress>(r.objects, 'Ingress').spec?.rules?.[0]?.http?.paths[0];
          if (path !== undefined) Object.assign(path, { path: '/', pathType: 'Prefix' });
        },
        /ingress: Ingress path \/ exposes/,
      ],
      [
        'Ingress backend naming another Service',
        (r) => {
          const path = only<IIngress>(r.objects, 'Ingress').spec?.rules?.[0]?.http?.paths[0];
          if (path?.backend.service !== undefined) path.backend.service.name = 'portico-web';
        },
        /ingress: Ingress path \/ has no backend Service port/,
      ],
      [
        'ha: two replicas',
        (r) => {
          if (r.deployment.spec !== undefined) r.deployment.spec.replicas = 2;
        },
        /replicas: replicas is not 3/,
      ],
      [
        'ha: a rollout that stops an old pod first',
        (r) => {
          const ru = r.deployment.spec?.strategy?.rollingUpdate;
          if (ru !== undefined) ru.maxUnavailable = 1;
        },
        /rollingUpdate: strategy/,
      ],
      [
        'ha: spread over zones only',
        (r) => {
          const spec = podSpec(r.deployment);
          spec.topologySpreadConstraints = spec.topologySpreadConstraints?.filter(
            (t) => t.topologyKey !== 'kubernetes.io/hostname',
          );
        },
        /spreadAcrossNodes: no topology spread across nodes/,
      ],
      [
        'ha: spread counting other pods',
        (r) => {
          const t = podSpec(r.deployment).topologySpreadConstraints?.[0];
          if (t !== undefined) t.labelSelector = { matchLabels: { app: 'x' } };
        },
        /selectors: topologySpread kubernetes.io\/hostname misses the pods/,
      ],
    ];

    it.each(cases)('%s', (_title, mutate, expected) => {
      const r = copyOf('overlays/ha');
      expect(violations('overlays/ha', r)).toEqual([]);
      mutate(r);
      const found = violations('overlays/ha', r);
      expect(found).toEqual(expect.arrayContaining([expect.stringMatching(expected)]));
    });
  });

  describe('each database requirement fails on a manifest that breaks it', () => {
    const cases: [string, (r: Rendered) => void, RegExp][] = [
      [
        'DATABASE_URL written into the manifest',
        (r) => setEnv(r, 'DATABASE_URL', 'postgres://portico:pw@db:5432/portico'),
        /database: DATABASE_URL is not taken from a Secret/,
      ],
      [
        'PLUGINS_CONFIG set as well',
        (r) => setEnv(r, 'PLUGINS_CONFIG', '/etc/portico/config/plugins.yaml'),
        /database: PLUGINS_CONFIG is set too/,
      ],
      [
        'no egress to PostgreSQL',
        (r) => {
          const policy = only<INetworkPolicy>(r.objects, 'NetworkPolicy');
          policy.spec = {
            ...policy.spec,
            podSelector: policy.spec?.podSelector ?? {},
            egress: (policy.spec?.egress ?? []).filter(
              (rule) => !(rule.ports ?? []).some((p) => p.port === 5432),
            ),
          };
        },
        /databaseEgress: the NetworkPolicy allows no egress to PostgreSQL/,
      ],
    ];

    it.each(cases)('%s', (_title, mutate, expected) => {
      const r = copyOf('overlays/ha-database');
      expect(violations('overlays/ha-database', r)).toEqual([]);
      mutate(r);
      expect(violations('overlays/ha-database', r)).toEqual(
        expect.arrayContaining([expect.stringMatching(expected)]),
      );
    });
  });

  describe('PLUGIN_SECRETS_DIR as kubelet lays out the projected volume', () => {
    let root: string;
    beforeEach(() => {
      root = mkdtempSync(join(tmpdir(), 'portico-k8s-secrets-'));
    });
    afterEach(() => rmSync(root, { recursive: true, force: true }));

    /**
     * Kubelet's atomic writer: the files go into a fresh `..<timestamp>` directory, `..data`
     * is switched to it by renaming a new symlink over the old, and each top-level entry of
     * the volume is a symlink `<entry> -> ..data/<entry>`.
     */
    function kubeletWrite(files: ReadonlyMap<string, string>, generation: number): void {
      const stamp = `..2026_12_02_00_00_0${generation}.000000000`;
      for (const [path, value] of files) {
        mkdirSync(join(root, stamp, posix.dirname(path)), { recursive: true });
        writeFileSync(join(root, stamp, path), value, { mode: 0o440 });
      }
      symlinkSync(stamp, join(root, '..data_tmp'));
      renameSync(join(root, '..data_tmp'), join(root, '..data'));
      for (const top of new Set([...files.keys()].map((p) => p.split('/')[0] as string))) {
        try {
          symlinkSync(posix.join('..data', top), join(root, top));
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        }
      }
    }

    it("MountedSecrets reads every item of the Deployment's volume, and follows a swap", () => {
      const r = rendered(objectsOf('overlays/ha'));
      const volume = podSpec(r.deployment).volumes?.find((v) => v.name === 'plugin-secrets');
      const items = secretItems(volume) ?? [];
      expect(items.length).toBeGreaterThan(0);
      const files = (suffix: string): Map<string, string> =>
        new Map(items.map((i) => [i.path, `${i.key}-${suffix}\n`]));
      kubeletWrite(files('one'), 1);

      const secrets = new MountedSecrets(root);
      const read = (): string[] =>
        items.map((i) => {
          const [plugin, key] = i.path.split('/') as [string, string];
          return secrets.values(plugin, [key]).get(key) ?? '<absent>';
        });
      expect(read()).toEqual(items.map((i) => `${i.key}-one`));

      kubeletWrite(files('two'), 2);
      const changed = items.map((i) => {
        const [plugin, key] = i.path.split('/') as [string, string];
        return secrets.refresh(plugin, [key]);
      });
      expect(changed.every(Boolean)).toBe(true);
      expect(read()).toEqual(items.map((i) => `${i.key}-two`));
    });
  });
});
