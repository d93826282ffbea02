import { readFileSync } from 'node:fs';
import { Inject, Injectable, type OnModuleDestroy, type OnModuleInit } from '@nestjs/common';
import type * as k8s from '@kubernetes/client-node' with { 'resolution-mode': 'import' };
import { CONFIG, LOGGER, type Logger } from '@ai-platform/platform';
import type { SchedulerConfig } from '../../config';
import { EnginePool } from '../engine-pool';
import { engineUrlsFromSlices, type EndpointSliceLike } from './endpoint-slices';

const SERVICE_ACCOUNT_NAMESPACE = '/var/run/secrets/kubernetes.io/serviceaccount/namespace';
const RESTART_AFTER_ERROR_MS = 2_000;

function podNamespace(): string {
  try {
    return readFileSync(SERVICE_ACCOUNT_NAMESPACE, 'utf8').trim() || 'default';
  } catch {
    return 'default';
  }
}

/**
 * Keeps the pool's `kubernetes` source equal to the ready endpoints of the
 * EndpointSlices matching ENGINE_DISCOVERY_SELECTOR: an informer (list, then
 * watch from that resourceVersion, relisting when the watch ends) from
 * `@kubernetes/client-node`, so engines join and leave as pods come and go.
 * In a pod it uses the service account; elsewhere KUBECONFIG. The Role needs
 * get/list/watch on endpointslices.discovery.k8s.io.
 */
@Injectable()
export class EndpointSliceDiscovery implements OnModuleInit, OnModuleDestroy {
  private informer?: k8s.Informer<k8s.V1EndpointSlice> & k8s.ObjectCache<k8s.V1EndpointSlice>;
  private restartTimer?: NodeJS.Timeout;
  private stopped = false;

  constructor(
    @Inject(CONFIG) private readonly config: SchedulerConfig,
    @Inject(LOGGER) private readonly logger: Logger,
    @Inject(EnginePool) private readonly pool: EnginePool,
  ) {}

  async onModuleInit(): Promise<void> {
    const selector = this.config.ENGINE_DISCOVERY_SELECTOR;
    if (!selector) return;
    // The client is ESM-only; this service compiles to CommonJS.
    const client = await import('@kubernetes/client-node');
    const kubeConfig = new client.KubeConfig();
    if (process.env.KUBERNETES_SERVICE_HOST && !process.env.KUBECONFIG) kubeConfig.loadFromCluster();
    else kubeConfig.loadFromDefault();
    const namespace = this.config.ENGINE_DISCOVERY_NAMESPACE || podNamespace();
    const api = kubeConfig.makeApiClient(client.DiscoveryV1Api);
    const informer = client.makeInformer<k8s.V1EndpointSlice>(
      kubeConfig,
      `/apis/discovery.k8s.io/v1/namespaces/${encodeURIComponent(namespace)}/endpointslices`,
      () => api.listNamespacedEndpointSlice({ namespace, labelSelector: selector }),
      selector,
    );
    this.informer = informer;
    const sync = () => this.sync();
    informer.on('add', sync);
    informer.on('update', sync);
    informer.on('delete', sync);
    informer.on('connect', sync);
    informer.on('error', (error: unknown) => {
      if (this.stopped) return;
      // The informer stops on error; keep the engines we know and start again.
      this.logger.warn({ err: error, namespace, selector }, 'EndpointSlice watch failed; restarting');
      clearTimeout(this.restartTimer);
      this.restartTimer = setTimeout(() => void informer.start().catch(() => undefined), RESTART_AFTER_ERROR_MS);
      this.restartTimer.unref();
    });
    this.logger.info({ namespace, selector }, 'watching engine EndpointSlices');
    try {
      await informer.start();
      this.sync();
    } catch (error) {
      this.logger.error({ err: error, namespace, selector }, 'EndpointSlice list failed at startup; retrying in the background');
    }
  }

  async onModuleDestroy(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.restartTimer);
    await this.informer?.stop();
  }

  private sync() {
    if (!this.informer || this.stopped) return;
    const urls = engineUrlsFromSlices(this.informer.list() as EndpointSliceLike[], {
      portName: this.config.ENGINE_DISCOVERY_PORT_NAME,
      scheme: this.config.ENGINE_DISCOVERY_SCHEME,
    });
    this.pool.setSource('kubernetes', urls);
  }
}
