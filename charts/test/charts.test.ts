// Charts: helm lint of every chart, helm template of the umbrella in each
// profile and of each service chart alone, every rendered manifest validated
// against the Kubernetes JSON schemas (strict, offline), and the hardening
// asserted. Tools come from infra/local/tools.sh (helm built with go install,
// kubernetes-validate from PyPI); see charts/test/validator/k8s_validate.py.
import { describe, it, expect, beforeAll } from 'vitest';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';

const root = path.resolve(import.meta.dirname, '../..');
const SERVICES = ['gateway', 'orchestrator', 'inference-scheduler', 'billing', 'retrieval', 'tool-sandbox', 'cpu-engine'] as const;
const UID = 10001;
const SECRET_NAME = 'platform-secrets';
const SECRET_KEY = /(^DATABASE_URL$|PASSWORD|PASSWD|SECRET|TOKEN|API_KEY|APIKEY|PRIVATE_KEY|CREDENTIAL)/i;
const SECRET_VALUE = /(:\/\/[^/@\s]*:[^/@\s]+@|^sk_(live|test)_|^rk_(live|test)_|-----BEGIN)/;

type Doc = Record<string, any>;
type Report = { resources: number; invalid: number; results: { resource: string; errors: string[]; document: Doc }[] };

let binDir = '';
const helmEnv = () => ({
  ...process.env,
  HELM_CONFIG_HOME: path.join(root, '.local/tools/helm-home/config'),
  HELM_CACHE_HOME: path.join(root, '.local/tools/helm-home/cache'),
  HELM_DATA_HOME: path.join(root, '.local/tools/helm-home/data'),
});

function run(cmd: string, args: string[], input?: string): { status: number; stdout: string; stderr: string } {
  try {
    const stdout = execFileSync(cmd, args, { cwd: root, env: helmEnv(), input, encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'], maxBuffer: 64 << 20 });
    return { status: 0, stdout, stderr: '' };
  } catch (err: any) {
    if (typeof err.status !== 'number') throw err;
    return { status: err.status, stdout: String(err.stdout ?? ''), stderr: String(err.stderr ?? '') };
  }
}

function helm(...args: string[]): string {
  const r = run(path.join(binDir, 'helm'), args);
  if (r.status !== 0) throw new Error(`helm ${args.join(' ')} failed (${r.status}):\n${r.stderr}${r.stdout}`);
  return r.stdout;
}

function validate(manifests: string): Report {
  const r = run(path.join(binDir, 'k8s-validate'), ['--json', '-'], manifests);
  if (r.status > 1 || !r.stdout.trim().startsWith('{')) throw new Error(`k8s-validate failed (${r.status}): ${r.stderr}${r.stdout}`);
  return JSON.parse(r.stdout) as Report;
}

function yamlToJson(file: string): Doc[] {
  const r = run(path.join(binDir, 'k8s-validate'), ['--dump', file]);
  if (r.status !== 0) throw new Error(r.stderr);
  return JSON.parse(r.stdout) as Doc[];
}

// One render per target, shared by the schema and the hardening test of that target.
type Target = { name: string; args: string[]; profile?: 'default' | 'dev' | 'prod'; service?: string };
const TARGETS: Target[] = [
  { name: 'platform (default profile)', profile: 'default', args: ['charts/platform'] },
  { name: 'platform (dev profile)', profile: 'dev', args: ['charts/platform', '-f', 'charts/platform/values-dev.yaml'] },
  { name: 'platform (prod profile)', profile: 'prod', args: ['charts/platform', '-f', 'charts/platform/values-prod.yaml'] },
  ...SERVICES.map((s) => ({ name: `${s} (chart alone)`, service: s, args: [`charts/${s}`] })),
];
const rendered = new Map<string, { text: string; report: Report; docs: Doc[] }>();
function render(t: Target) {
  let r = rendered.get(t.name);
  if (!r) {
    const text = helm('template', 'platform', ...t.args, '--namespace', 'ai-platform');
    const report = validate(text);
    r = { text, report, docs: report.results.map((x) => x.document) };
    rendered.set(t.name, r);
  }
  return r;
}

const byKind = (docs: Doc[], kind: string) => docs.filter((d) => d?.kind === kind);
const named = (docs: Doc[], kind: string, name: string) => docs.find((d) => d?.kind === kind && d.metadata?.name === name);

function assertHardened(docs: Doc[]) {
  const deployments = byKind(docs, 'Deployment');
  expect(deployments.length).toBeGreaterThan(0);
  expect(byKind(docs, 'Secret'), 'charts must never render Secrets').toEqual([]);
  for (const kind of ['StatefulSet', 'DaemonSet', 'Job', 'CronJob', 'Pod']) expect(byKind(docs, kind), kind).toEqual([]);

  const serviceAccounts = new Set<string>();
  for (const d of deployments) {
    const name: string = d.metadata.name;
    const pod = d.spec.template.spec;
    const ctx = `Deployment/${name}`;

    // A service account of its own, with a token only where the API is used.
    expect(pod.serviceAccountName, ctx).toBe(name);
    expect(serviceAccounts.has(pod.serviceAccountName), `${ctx} shares its ServiceAccount`).toBe(false);
    serviceAccounts.add(pod.serviceAccountName);
    const sa = named(docs, 'ServiceAccount', name);
    expect(sa, `${ctx}: ServiceAccount`).toBeDefined();
    const needsApi = name === 'inference-scheduler';
    expect(sa!.automountServiceAccountToken, ctx).toBe(needsApi);
    expect(pod.automountServiceAccountToken, ctx).toBe(needsApi);

    // Pod-level hardening.
    expect(pod.securityContext, ctx).toMatchObject({ runAsNonRoot: true, runAsUser: UID, seccompProfile: { type: 'RuntimeDefault' } });
    expect(pod.hostNetwork ?? false, ctx).toBe(false);
    expect(pod.hostPID ?? false, ctx).toBe(false);

    const containers: Doc[] = [...(pod.initContainers ?? []), ...pod.containers];
    for (const c of containers) {
      const cctx = `${ctx} container ${c.name}`;
      expect(c.securityContext, cctx).toMatchObject({
        runAsNonRoot: true,
        runAsUser: UID,
        readOnlyRootFilesystem: true,
        allowPrivilegeEscalation: false,
        capabilities: { drop: ['ALL'] },
      });
      expect(c.securityContext.privileged ?? false, cctx).toBe(false);
      expect(c.securityContext.capabilities.add ?? [], cctx).toEqual([]);
      expect(c.resources?.limits?.cpu, `${cctx} limits.cpu`).toBeTruthy();
      expect(c.resources?.limits?.memory, `${cctx} limits.memory`).toBeTruthy();
      expect(c.resources?.requests?.cpu, `${cctx} requests.cpu`).toBeTruthy();
      expect(c.resources?.requests?.memory, `${cctx} requests.memory`).toBeTruthy();
      expect(c.livenessProbe?.httpGet, `${cctx} livenessProbe`).toMatchObject({ path: '/healthz', port: 'http' });
      expect(c.readinessProbe?.httpGet, `${cctx} readinessProbe`).toMatchObject({ path: '/readyz', port: 'http' });
      expect(c.image, cctx).toMatch(/^[^\s:]+(:[\w.-]+)?(@sha256:[0-9a-f]{64})?$/);
      // Secrets only by reference.
      for (const e of c.env ?? []) {
        if (SECRET_KEY.test(e.name)) {
          expect(e.value, `${cctx} env ${e.name} must come from a Secret`).toBeUndefined();
          expect(e.valueFrom?.secretKeyRef?.name, `${cctx} env ${e.name}`).toBe(SECRET_NAME);
        }
      }
      // The read-only root filesystem leaves /tmp as an emptyDir.
      const tmp = (c.volumeMounts ?? []).find((m: Doc) => m.mountPath === '/tmp');
      expect(tmp, `${cctx} /tmp mount`).toBeDefined();
      expect(pod.volumes.find((v: Doc) => v.name === tmp.name)?.emptyDir, `${cctx} /tmp emptyDir`).toBeDefined();
    }

    // Ports, Service, scraping, NetworkPolicy.
    const main = pod.containers[0];
    const ports = Object.fromEntries(main.ports.map((p: Doc) => [p.name, p.containerPort]));
    expect(ports.http, `${ctx} http port`).toBeDefined();
    const svc = named(docs, 'Service', name);
    expect(svc, `${ctx}: Service`).toBeDefined();
    expect(svc!.spec.ports.map((p: Doc) => p.name).sort(), `${ctx}: Service ports`).toEqual(Object.keys(ports).sort());
    const annotations = d.spec.template.metadata.annotations;
    expect(annotations['prometheus.io/scrape'], ctx).toBe('true');
    expect(annotations['prometheus.io/port'], ctx).toBe(String(ports.http));
    expect(annotations['prometheus.io/path'], ctx).toBe('/metrics');
    const np = byKind(docs, 'NetworkPolicy').find((p) => p.spec.podSelector.matchLabels?.['app.kubernetes.io/name'] === name);
    expect(np, `${ctx}: NetworkPolicy`).toBeDefined();
    expect(np!.spec.policyTypes, ctx).toContain('Ingress');

    // Non-secret environment from its ConfigMap; graceful shutdown fits the grace period.
    const cmName = main.envFrom?.find((e: Doc) => e.configMapRef)?.configMapRef.name;
    const cm = named(docs, 'ConfigMap', cmName);
    expect(cm, `${ctx}: ConfigMap ${cmName}`).toBeDefined();
    expect(cm!.data.HTTP_PORT, ctx).toBe(String(ports.http));
    if (ports.grpc) expect(cm!.data.GRPC_PORT, ctx).toBe(String(ports.grpc));
    const graceMs = Number(cm!.data.SHUTDOWN_GRACE_MS);
    expect(graceMs, `${ctx} SHUTDOWN_GRACE_MS`).toBeGreaterThan(0);
    expect(pod.terminationGracePeriodSeconds * 1000, `${ctx} terminationGracePeriodSeconds`).toBeGreaterThan(graceMs);

    if (name === 'cpu-engine') {
      expect(main.startupProbe?.httpGet, `${ctx} startupProbe`).toBeDefined();
      const model = main.volumeMounts.find((m: Doc) => m.name === 'model');
      expect(model, `${ctx} model mount`).toMatchObject({ readOnly: true });
      expect(cm!.data.MODEL_PATH.startsWith(`${model.mountPath}/`), `${ctx} MODEL_PATH`).toBe(true);
      const vol = pod.volumes.find((v: Doc) => v.name === 'model');
      expect(Boolean(vol.persistentVolumeClaim) !== Boolean(vol.hostPath), `${ctx} model from a PVC or a hostPath`).toBe(true);
    }
    if (needsApi) {
      const role = named(docs, 'Role', name);
      expect(role?.rules, `${ctx}: Role`).toEqual([{ apiGroups: ['discovery.k8s.io'], resources: ['endpointslices'], verbs: ['get', 'list', 'watch'] }]);
      const binding = named(docs, 'RoleBinding', name);
      expect(binding?.roleRef).toMatchObject({ kind: 'Role', name });
      expect(binding?.subjects).toEqual([{ kind: 'ServiceAccount', name, namespace: 'ai-platform' }]);
    }
  }
  expect(byKind(docs, 'Role').map((r) => r.metadata.name).filter((n) => n !== 'inference-scheduler'), 'only the scheduler gets API rights').toEqual([]);
  expect(byKind(docs, 'ClusterRole')).toEqual([]);

  // No literal secret in any ConfigMap.
  for (const cm of byKind(docs, 'ConfigMap')) {
    for (const [key, value] of Object.entries<string>(cm.data ?? {})) {
      expect(SECRET_KEY.test(key), `ConfigMap/${cm.metadata.name} key ${key} looks secret`).toBe(false);
      expect(SECRET_VALUE.test(value), `ConfigMap/${cm.metadata.name} ${key}=${value} carries a credential`).toBe(false);
    }
  }
}

beforeAll(() => {
  const started = Date.now();
  const out = execFileSync('bash', ['infra/local/tools.sh'], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  binDir = out.trim().split('\n').pop()!;
  expect(existsSync(path.join(binDir, 'helm'))).toBe(true);
  // file:// dependencies: charts/common into each service chart, then those into the umbrella.
  execFileSync('bash', ['charts/deps.sh'], { cwd: root, env: { ...helmEnv(), HELM: path.join(binDir, 'helm') }, stdio: ['ignore', 'inherit', 'inherit'] });
  const seconds = (Date.now() - started) / 1000;
  if (seconds > 10) console.log(`[charts] tools and chart dependencies ready in ${seconds.toFixed(0)}s`);
}, 900_000);

describe('helm lint', () => {
  for (const chart of ['common', ...SERVICES, 'platform']) {
    it(`lints charts/${chart}`, () => {
      const out = helm('lint', '--strict', `charts/${chart}`);
      expect(out).toMatch(/1 chart\(s\) linted, 0 chart\(s\) failed/);
    });
  }
  for (const profile of ['dev', 'prod']) {
    it(`lints charts/platform with values-${profile}.yaml`, () => {
      const out = helm('lint', '--strict', 'charts/platform', '-f', `charts/platform/values-${profile}.yaml`);
      expect(out).toMatch(/0 chart\(s\) failed/);
    });
  }
});

describe('rendered manifests', () => {
  for (const t of TARGETS) {
    it(`${t.name}: every manifest passes the strict Kubernetes 1.37 schemas`, () => {
      const { report } = render(t);
      const errors = report.results.flatMap((r) => r.errors.map((e) => `${r.resource}: ${e}`));
      expect(errors).toEqual([]);
      expect(report.resources).toBeGreaterThanOrEqual(5);
    });
    it(`${t.name}: workloads are hardened`, () => {
      assertHardened(render(t).docs);
    });
  }

  it('platform (default profile): all seven services, one Deployment each', () => {
    const { docs } = render(TARGETS[0]);
    expect(byKind(docs, 'Deployment').map((d) => d.metadata.name).sort()).toEqual([...SERVICES].sort());
    expect(named(docs, 'NetworkPolicy', 'gateway')!.spec.ingress[0]).toEqual({ ports: [{ port: 'http', protocol: 'TCP' }] });
  });

  it('platform (dev profile): single replicas, no PDB or HPA, model from a hostPath', () => {
    const { docs } = render(TARGETS[1]);
    for (const d of byKind(docs, 'Deployment')) expect(d.spec.replicas, d.metadata.name).toBe(1);
    expect(byKind(docs, 'PodDisruptionBudget')).toEqual([]);
    expect(byKind(docs, 'HorizontalPodAutoscaler')).toEqual([]);
    const engine = named(docs, 'Deployment', 'cpu-engine')!;
    expect(engine.spec.template.spec.volumes.find((v: Doc) => v.name === 'model').hostPath).toBeDefined();
    expect(byKind(docs, 'PersistentVolumeClaim')).toEqual([]);
  });

  it('platform (prod profile): >= 2 replicas, a PDB for every service, an HPA on the gateway', () => {
    const { docs } = render(TARGETS[2]);
    const hpas = byKind(docs, 'HorizontalPodAutoscaler');
    expect(hpas.map((h) => h.spec.scaleTargetRef.name)).toEqual(['gateway']);
    expect(hpas[0].spec.minReplicas).toBeGreaterThanOrEqual(2);
    for (const d of byKind(docs, 'Deployment')) {
      const scaled = hpas.some((h) => h.spec.scaleTargetRef.name === d.metadata.name);
      if (scaled) expect(d.spec.replicas, `${d.metadata.name}: the HPA owns replicas`).toBeUndefined();
      else expect(d.spec.replicas, d.metadata.name).toBeGreaterThanOrEqual(2);
      const pdb = byKind(docs, 'PodDisruptionBudget').find((p) => p.spec.selector.matchLabels['app.kubernetes.io/name'] === d.metadata.name);
      expect(pdb, `${d.metadata.name}: PDB`).toBeDefined();
    }
  });

  it('cpu-engine (chart alone): creates the model PVC and mounts it read-only', () => {
    const { docs } = render(TARGETS.find((t) => t.service === 'cpu-engine')!);
    const pvc = named(docs, 'PersistentVolumeClaim', 'cpu-engine-model');
    expect(pvc).toBeDefined();
    const vol = named(docs, 'Deployment', 'cpu-engine')!.spec.template.spec.volumes.find((v: Doc) => v.name === 'model');
    expect(vol.persistentVolumeClaim).toEqual({ claimName: 'cpu-engine-model', readOnly: true });
    const config = (rendered: Doc[]) => named(rendered, 'ConfigMap', named(rendered, 'Deployment', 'cpu-engine')!.spec.template.spec.containers[0].envFrom.find((e: Doc) => e.configMapRef).configMapRef.name)!.data;
    expect(config(docs).EMBEDDING_MODEL_PATH, 'no embedding model unless one is named').toBeUndefined();
    const withEmbeddings = validate(helm('template', 'platform', 'charts/cpu-engine', '--namespace', 'ai-platform', '--set', 'model.embeddingFile=all-minilm-l6-v2-f32.gguf')).results.map((x) => x.document);
    expect(config(withEmbeddings).EMBEDDING_MODEL_PATH).toBe('/models/all-minilm-l6-v2-f32.gguf');
  });

  it('charts refuse secret-looking config values and missing limits', () => {
    const bad = [
      ['--set', 'config.DB_PASSWORD=hunter2'],
      ['--set', 'config.DATABASE_URL=postgres://u:p@db/x'],
      ['--set', 'config.CACHE_URL=redis://user:pass@redis:6379'],
      ['--set', 'resources.limits=null'],
    ];
    for (const args of bad) {
      const r = run(path.join(binDir, 'helm'), ['template', 'x', 'charts/gateway', ...args]);
      expect(r.status, args.join(' ')).not.toBe(0);
    }
  });
});

describe('schema validator (k8s-validate)', () => {
  const deployment = (patch: string) => `apiVersion: apps/v1
kind: Deployment
metadata:
  name: broken
spec:
  replicas: 1
  selector: {matchLabels: {app: broken}}
  template:
    metadata: {labels: {app: broken}}
    spec:
      containers:
        - name: app
          image: example/app:1
${patch}`;

  it('accepts a valid manifest', () => {
    const report = validate(deployment(''));
    expect(report).toMatchObject({ resources: 1, invalid: 0 });
  });
  it('rejects a wrong type', () => {
    const report = validate(deployment('').replace('replicas: 1', 'replicas: "two"'));
    expect(report.invalid).toBe(1);
    expect(report.results[0].errors.join('\n')).toMatch(/spec\.replicas: 'two' is not of type 'integer'/);
  });
  it('rejects an unknown field', () => {
    const report = validate(deployment('          imagePullPolcy: Always\n'));
    expect(report.invalid).toBe(1);
    expect(report.results[0].errors.join('\n')).toMatch(/'imagePullPolcy' was unexpected/);
  });
  it('rejects an unknown kind, a duplicate key and a bad port name', () => {
    expect(validate('apiVersion: apps/v1\nkind: Deploymnt\nmetadata: {name: x}\nspec: {}\n').invalid).toBe(1);
    expect(validate('apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\nmetadata: {name: y}\n').invalid).toBe(1);
    const ports = '          ports: [{name: much-too-long-port-name, containerPort: 80}]\n';
    expect(validate(deployment(ports)).results[0].errors.join('\n')).toMatch(/IANA_SVC_NAME/);
  });
});

describe('images and skaffold', () => {
  const workspaceDeps = (dir: string, seen = new Set<string>()): Set<string> => {
    const pkg = JSON.parse(readFileSync(path.join(root, dir, 'package.json'), 'utf8'));
    for (const dep of Object.keys(pkg.dependencies ?? {})) {
      if (!dep.startsWith('@ai-platform/')) continue;
      const lib = `libs/${dep.slice('@ai-platform/'.length)}`;
      if (!seen.has(lib) && existsSync(path.join(root, lib, 'package.json'))) {
        seen.add(lib);
        workspaceDeps(lib, seen);
      }
    }
    return seen;
  };

  for (const s of SERVICES) {
    it(`services/${s}/Dockerfile: pinned base, workspace closure, non-root, no HEALTHCHECK`, () => {
      const text = readFileSync(path.join(root, 'services', s, 'Dockerfile'), 'utf8');
      expect(text).toMatch(/^ARG NODE_IMAGE=node:24\.\d+\.\d+-bookworm-slim$/m);
      expect(text).toContain(`npm ci --workspace services/${s} --include-workspace-root`);
      expect(text).toContain(`npm ci --workspace services/${s} --omit=dev`);
      expect(text).toContain(`npx tsc -b services/${s}`);
      expect(text).toMatch(/^ENV NODE_ENV=production$/m);
      expect(text).toMatch(/^USER 10001:10001$/m);
      expect(text).toContain(`CMD ["node", "services/${s}/dist/main.js"]`);
      expect(text).not.toMatch(/^HEALTHCHECK/m);
      expect(text, 'the model is mounted, never baked in').not.toMatch(/^(COPY|ADD)[^\n]*(\.gguf|models?\/)/im);
      for (const lib of workspaceDeps(`services/${s}`)) {
        expect(text, `${s} needs ${lib}`).toContain(`COPY ${lib}/package.json ${lib}/`);
        expect(text, `${s} needs ${lib}`).toContain(`COPY --from=build /app/${lib}/dist ${lib}/dist`);
      }
      if (existsSync(path.join(root, 'services', s, 'migrations'))) expect(text).toContain(`COPY services/${s}/migrations services/${s}/migrations`);
    });
  }

  it('skaffold.yaml builds the seven images and sets each chart image from them', () => {
    const [cfg] = yamlToJson('skaffold.yaml');
    expect(cfg.apiVersion).toMatch(/^skaffold\/v4beta(1[1-9]|[2-9]\d)$/);
    const artifacts: Doc[] = cfg.build.artifacts;
    expect(artifacts.map((a) => a.image).sort()).toEqual(SERVICES.map((s) => `ai-platform/${s}`).sort());
    const [release] = cfg.deploy.helm.releases;
    expect(release.chartPath).toBe('charts/platform');
    for (const f of release.valuesFiles) expect(existsSync(path.join(root, f)), f).toBe(true);
    for (const a of artifacts) {
      expect(a.context).toBe('.');
      expect(existsSync(path.join(root, a.docker.dockerfile)), a.docker.dockerfile).toBe(true);
      const service = a.image.split('/')[1];
      const key = a.image.replace(/[/\-.:]/g, '_');
      expect(release.setValueTemplates[`${service}.image.repository`]).toBe(`{{.IMAGE_REPO_${key}}}`);
      expect(release.setValueTemplates[`${service}.image.tag`]).toBe(`{{.IMAGE_TAG_${key}}}@{{.IMAGE_DIGEST_${key}}}`);
    }
    for (const p of cfg.profiles ?? []) for (const patch of p.patches ?? []) if (typeof patch.value === 'string' && patch.value.endsWith('.yaml')) expect(existsSync(path.join(root, patch.value)), patch.value).toBe(true);
  });

  it('.dockerignore keeps local builds, dependencies and models out of the context', () => {
    const lines = readFileSync(path.join(root, '.dockerignore'), 'utf8').split('\n').map((l) => l.trim());
    for (const p of ['**/node_modules', '**/dist', '**/*.tsbuildinfo', '**/*.gguf']) expect(lines).toContain(p);
  });

  it('every service has a chart and a Dockerfile', () => {
    const dirs = readdirSync(path.join(root, 'services'), { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => d.name);
    for (const s of dirs) {
      expect(existsSync(path.join(root, 'charts', s, 'Chart.yaml')), `charts/${s}`).toBe(true);
      expect(existsSync(path.join(root, 'services', s, 'Dockerfile')), `services/${s}/Dockerfile`).toBe(true);
    }
  });
});
