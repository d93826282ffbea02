import { createHmac, randomBytes } from 'node:crypto';
import dns from 'node:dns';
import http from 'node:http';
import https from 'node:https';
import net, { BlockList } from 'node:net';

const blocked = new BlockList();
for (const [address, prefix] of [['0.0.0.0', 8], ['10.0.0.0', 8], ['100.64.0.0', 10], ['127.0.0.0', 8], ['169.254.0.0', 16], ['172.16.0.0', 12], ['192.0.0.0', 24], ['192.168.0.0', 16], ['198.18.0.0', 15], ['224.0.0.0', 4], ['240.0.0.0', 4]] as const) {
  blocked.addSubnet(address, prefix, 'ipv4');
}
for (const [address, prefix] of [['::', 128], ['::1', 128], ['fc00::', 7], ['fe80::', 10], ['ff00::', 8], ['::ffff:0:0', 96], ['64:ff9b::', 96]] as const) {
  blocked.addSubnet(address, prefix, 'ipv6');
}

/** Loopback, private, link-local, CGNAT, multicast or reserved: not the public internet. */
export function isPrivateAddress(address: string): boolean {
  const family = net.isIP(address);
  if (family === 0) return true;
  return blocked.check(address, family === 4 ? 'ipv4' : 'ipv6');
}

export interface OutboundPolicy {
  allowedPrivateHosts: string[];
  allowHttp: boolean;
}

/** Why a URL may not be called, or undefined when it may (before DNS; the address is checked at connect). */
export function urlProblem(raw: string, policy: OutboundPolicy): string | undefined {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return 'not a valid URL';
  }
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && policy.allowHttp)) return 'must use https';
  if (url.username || url.password) return 'must not contain credentials';
  const host = url.hostname.replace(/^\[|\]$/g, '');
  if (policy.allowedPrivateHosts.includes(host)) return undefined;
  if (net.isIP(host) && isPrivateAddress(host)) return 'must not point at a private or loopback address';
  return undefined;
}

/**
 * A DNS lookup that refuses private and loopback addresses unless the host is
 * allowed by the operator. Used as the socket's lookup, so the address checked
 * is the address connected to (no DNS-rebinding gap).
 */
function guardedLookup(host: string, policy: OutboundPolicy): net.LookupFunction {
  return (hostname, options, callback) => {
    dns.lookup(hostname, { ...options, all: true }, (error, addresses) => {
      if (error) return callback(error, '', 4);
      const list = addresses as dns.LookupAddress[];
      const allowed = policy.allowedPrivateHosts.includes(host);
      const bad = list.find((entry) => isPrivateAddress(entry.address));
      if (bad && !allowed) return callback(Object.assign(new Error(`refusing to call ${host}: it resolves to a private or loopback address (${bad.address})`), { code: 'EPRIVATEADDR' }), '', 4);
      const first = list[0]!;
      if ((options as { all?: boolean }).all) return (callback as unknown as (e: null, a: dns.LookupAddress[]) => void)(null, list);
      callback(null, first.address, first.family);
    });
  };
}

/** POSTs JSON with the guarded lookup; resolves with the status, rejects on network errors or timeout. */
export function postJson(rawUrl: string, body: string, headers: Record<string, string>, policy: OutboundPolicy, timeoutMs: number): Promise<number> {
  const problem = urlProblem(rawUrl, policy);
  if (problem) return Promise.reject(new Error(`webhook URL ${problem}`));
  const url = new URL(rawUrl);
  const host = url.hostname.replace(/^\[|\]$/g, '');
  if (net.isIP(host) && isPrivateAddress(host) && !policy.allowedPrivateHosts.includes(host)) {
    return Promise.reject(new Error(`refusing to call ${host}: private or loopback address`));
  }
  const client = url.protocol === 'https:' ? https : http;
  return new Promise((resolve, reject) => {
    const request = client.request(url, {
      method: 'POST', lookup: guardedLookup(host, policy), timeout: timeoutMs,
      headers: { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)), 'user-agent': 'ai-platform-webhooks/1', ...headers },
    }, (response) => {
      response.resume();
      response.on('end', () => resolve(response.statusCode ?? 0));
      response.on('error', reject);
    });
    request.on('timeout', () => request.destroy(new Error(`timed out after ${timeoutMs} ms`)));
    request.on('error', reject);
    request.end(body);
  });
}

export function newWebhookSecret(): string {
  return `whsec_${randomBytes(24).toString('base64')}`;
}

/** Standard Webhooks signature: v1,base64(HMAC-SHA256(secret, `${id}.${timestamp}.${body}`)). */
export function signWebhook(secret: string, id: string, timestamp: number, body: string): string {
  const key = Buffer.from(secret.replace(/^whsec_/, ''), 'base64');
  return `v1,${createHmac('sha256', key).update(`${id}.${timestamp}.${body}`).digest('base64')}`;
}
