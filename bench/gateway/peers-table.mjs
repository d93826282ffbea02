// Markdown tables of a peer-comparison report written by bench/gateway/run.mjs.
// Usage: node bench/gateway/peers-table.mjs [report.json=bench/results/gateway-peers.json]
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const LABEL = { engine: 'engine direct', platform: 'our platform (3 hops)', litellm: 'LiteLLM', portkey: 'Portkey' };
const ms = (value) => (value === null || value === undefined ? '–' : value >= 100 ? String(Math.round(value)) : value.toFixed(value >= 10 ? 1 : 2));
const pair = (s) => (s ? `${ms(s.p50)} / ${ms(s.p99)}` : '–');
const bold = (s) => (s ? `**${pair(s)}**` : '–');

export function peersTable(report) {
  const label = (name) => {
    const s = report.systems[name] ?? {};
    return `${LABEL[name] ?? name}${s.version ? ` ${s.version}` : ''}${s.workers ? ` (${s.workers} worker${s.workers > 1 ? 's' : ''})` : ''}`;
  };
  const lines = [];
  const m = report.machine;
  lines.push(`Run ${report.startedAt}: ${m.cpus} × ${m.cpu}, ${m.memGiB} GiB, Node ${m.node}; ${report.seconds} s per cell after ${report.warmupSeconds ?? 0} s of warm-up per system and mode; load average (1/5/15 min) ${m.loadavgBefore.join(' / ')} before, ${(m.loadavgAfter ?? []).join(' / ')} after.`);
  lines.push(`Request: \`${JSON.stringify(report.body)}\` (+ \`"stream": true, "stream_options": {"include_usage": true}\` for streams), no conversation. ms, p50 / p99; added = system − engine direct, same mode and concurrency.`);
  lines.push('');
  lines.push(`Reproduce (after the setup in bench/gateway/README.md: peers/install.sh, infra.env, build): \`${report.command}\``);
  lines.push('');
  const cells = (mode) => report.cells.filter((row) => row.mode === mode);
  if (cells('json').length) {
    lines.push('### Non-streamed: total time', '');
    lines.push('| c | system | total p50 / p99 | added p50 / p99 | req/s | errors |', '|---|---|---|---|---|---|');
    for (const row of cells('json')) lines.push(`| ${row.c} | ${label(row.system)} | ${pair(row.total)} | ${row.system === 'engine' ? '–' : bold(row.addedTotal)} | ${Math.round(row.rps)} | ${row.errors} |`);
    lines.push('');
  }
  if (cells('stream').length) {
    lines.push('### Streamed: time to first token (first SSE event with content) and total time', '');
    lines.push('| c | system | first token p50 / p99 | added first token p50 / p99 | total p50 / p99 | added total p50 / p99 | req/s | errors |', '|---|---|---|---|---|---|---|---|');
    for (const row of cells('stream')) {
      const engine = row.system === 'engine';
      lines.push(`| ${row.c} | ${label(row.system)} | ${pair(row.firstToken)} | ${engine ? '–' : bold(row.addedFirstToken)} | ${pair(row.total)} | ${engine ? '–' : pair(row.addedTotal)} | ${Math.round(row.rps)} | ${row.errors} |`);
    }
    lines.push('');
  }
  lines.push('### Highest sustained rate and peak memory', '');
  lines.push('| system | highest req/s (cell, 0 errors) | peak RSS, MiB (VmHWM, sum) | per process |', '|---|---|---|---|');
  for (const name of Object.keys(report.peakRssMiB)) {
    const best = report.highestRps[name];
    const rss = report.peakRssMiB[name];
    const parts = Object.entries(rss.processes).map(([process, mib]) => `${process} ${mib ?? '?'}`).join(', ');
    lines.push(`| ${label(name)} | ${best ? `${Math.round(best.rps)} (${best.mode}, c=${best.c})` : '–'} | ${rss.total} | ${parts} |`);
  }
  for (const [name, why] of Object.entries(report.failures ?? {})) lines.push('', `${LABEL[name] ?? name} not measured: ${why.split('\n')[0]}`);
  return `${lines.join('\n')}\n`;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const file = process.argv[2] ?? path.join(path.dirname(fileURLToPath(import.meta.url)), '../results/gateway-peers.json');
  process.stdout.write(peersTable(JSON.parse(readFileSync(file, 'utf8'))));
}
