/** The parts of a `discovery.k8s.io/v1` EndpointSlice that discovery reads. */
export interface EndpointSliceLike {
  metadata?: { name?: string; namespace?: string };
  addressType?: string;
  endpoints?: Array<{ addresses?: string[]; conditions?: { ready?: boolean | null; terminating?: boolean | null } | null }> | null;
  ports?: Array<{ name?: string | null; port?: number | null; protocol?: string | null }> | null;
}

/**
 * Engine base URLs from EndpointSlices: every ready endpoint address (ready
 * unset counts as ready, as the API specifies; terminating pods drain and get
 * no new requests) at the named port (the first TCP port when no name is
 * configured). FQDN slices are skipped; IPv6 addresses are bracketed.
 */
export function engineUrlsFromSlices(slices: readonly EndpointSliceLike[], options: { portName: string; scheme: 'http' | 'https' }): string[] {
  const urls = new Set<string>();
  for (const slice of slices) {
    if (slice.addressType !== 'IPv4' && slice.addressType !== 'IPv6') continue;
    const port = (slice.ports ?? []).find((candidate) => (options.portName ? candidate.name === options.portName : (candidate.protocol ?? 'TCP') === 'TCP'));
    if (!port?.port) continue;
    for (const endpoint of slice.endpoints ?? []) {
      if (endpoint.conditions?.ready === false || endpoint.conditions?.terminating === true) continue;
      for (const address of endpoint.addresses ?? []) {
        const host = slice.addressType === 'IPv6' ? `[${address}]` : address;
        urls.add(`${options.scheme}://${host}:${port.port}`);
      }
    }
  }
  return [...urls].sort();
}
