import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { inference } from '@ai-platform/contracts';
import type { RunningService } from '@ai-platform/platform';
import type { SchedulerConfig } from '../src/config';
import { engineUrlsFromSlices } from '../src/engines/discovery/endpoint-slices';
import { EnginePool } from '../src/engines/engine-pool';
import { FakeKubeApi } from './fixtures/fake-kube-api';
import { FakeVllm } from './fixtures/fake-vllm';
import { collect, ids, requireInfra, schedulerClient, startScheduler, waitFor, type InferenceClient } from './fixtures/harness';

// Kubernetes discovery through @kubernetes/client-node against a fake API
// server answering list and watch with real EndpointSlice JSON: the pool
// follows pods as they become ready, unready, and go away.
const MODEL = 'discovered-model';
const NAMESPACE = 'inference';
const LABELS = { 'app.kubernetes.io/name': 'vllm' };

describe('EndpointSlice discovery', () => {
  const infra = requireInfra();
  const kube = new FakeKubeApi(NAMESPACE);
  const a = new FakeVllm(MODEL);
  const b = new FakeVllm(MODEL);
  let service: RunningService<SchedulerConfig>;
  let client: InferenceClient;
  let pool: EnginePool;
  const port = (engine: FakeVllm) => Number(new URL(engine.url).port);
  const ready = () => pool.engines.filter((engine) => engine.healthy).map((engine) => engine.id).sort();

  beforeAll(async () => {
    await Promise.all([kube.start(), a.start(), b.start()]);
    kube.apply(FakeKubeApi.slice('vllm-a', NAMESPACE, LABELS, port(a), [{ ip: '127.0.0.1', ready: true }]));
    kube.apply(FakeKubeApi.slice('other-app', NAMESPACE, { 'app.kubernetes.io/name': 'redis' }, port(b), [{ ip: '127.0.0.1', ready: true }]));
    service = await startScheduler({
      ENGINES: '',
      KUBECONFIG: kube.kubeconfig(),
      ENGINE_DISCOVERY_SELECTOR: 'app.kubernetes.io/name=vllm',
      ENGINE_DISCOVERY_NAMESPACE: NAMESPACE,
      ENGINE_DISCOVERY_PORT_NAME: 'http',
      DATABASE_URL: infra.databaseUrl,
      KAFKA_BROKERS: infra.kafkaBrokers,
      ENGINE_POLL_INTERVAL_MS: '200',
    });
    client = schedulerClient(service);
    pool = service.app.get(EnginePool);
  });

  afterAll(async () => {
    client?.close();
    await service?.shutdown('test done');
    await Promise.all([kube.stop(), a.stop(), b.stop()]);
  });

  it('lists the matching slices at startup and serves through the discovered engine', async () => {
    await waitFor('engine a to be discovered and ready', () => ready().join() === `127.0.0.1:${port(a)}`);
    expect(kube.paths.some((p) => p.includes('labelSelector=app.kubernetes.io%2Fname%3Dvllm'))).toBe(true);
    const responses = await collect(client.generate({ model: MODEL, messages: [{ role: 'user', content: 'hi' }], sampling: { maxTokens: 2 } }, { context: ids('discovered') }));
    expect((responses.at(-1)!.event.value as inference.Completion).engineId).toBe(`127.0.0.1:${port(a)}`);
  });

  it('adds an engine when its slice appears on the watch, and drops one whose endpoint turns unready or whose slice is deleted', async () => {
    await waitFor('the watch to be open', () => kube.watchers.size > 0);
    kube.apply(FakeKubeApi.slice('vllm-b', NAMESPACE, LABELS, port(b), [{ ip: '127.0.0.1', ready: true }]));
    await waitFor('engine b to join', () => ready().length === 2);
    kube.apply(FakeKubeApi.slice('vllm-a', NAMESPACE, LABELS, port(a), [{ ip: '127.0.0.1', ready: false }]));
    await waitFor('engine a to leave', () => pool.engines.map((engine) => engine.id).join() === `127.0.0.1:${port(b)}`);
    kube.delete('vllm-b');
    await waitFor('engine b to leave', () => pool.engines.length === 0);
    expect(pool.availableModels()).toEqual([]);
  });
});

describe('engineUrlsFromSlices', () => {
  it('takes ready, non-terminating endpoints at the named port, brackets IPv6 and skips FQDN slices', () => {
    const slice = (addressType: string, endpoints: unknown[], ports: unknown[]) => ({ addressType, endpoints, ports }) as never;
    const urls = engineUrlsFromSlices(
      [
        slice('IPv4', [{ addresses: ['10.0.0.1'], conditions: { ready: true } }, { addresses: ['10.0.0.2'], conditions: { ready: false } }, { addresses: ['10.0.0.3'], conditions: {} }, { addresses: ['10.0.0.4'], conditions: { ready: true, terminating: true } }], [{ name: 'metrics', port: 9090 }, { name: 'http', port: 8000 }]),
        slice('IPv6', [{ addresses: ['fd00::1'] }], [{ name: 'http', port: 8000 }]),
        slice('FQDN', [{ addresses: ['engine.example'] }], [{ name: 'http', port: 8000 }]),
        slice('IPv4', [{ addresses: ['10.0.0.9'] }], [{ name: 'grpc', port: 9000 }]),
      ],
      { portName: 'http', scheme: 'http' },
    );
    expect(urls).toEqual(['http://10.0.0.1:8000', 'http://10.0.0.3:8000', 'http://[fd00::1]:8000']);
  });
});
