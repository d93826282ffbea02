import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { create, fromBinary, fromJsonString, toBinary, toJsonString } from '@bufbuild/protobuf';
import { describe, expect, it } from 'vitest';
import { events, Topics } from '@ai-platform/contracts';

const root = path.resolve(__dirname, '../../..');
const bin = (name: string) => path.join(root, 'node_modules/.bin', name);

function listFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((entry) => {
    const full = path.join(dir, entry);
    return statSync(full).isDirectory() ? listFiles(full).map((file) => path.join(entry, file)) : [entry];
  });
}

describe('proto contracts', () => {
  it('pass buf lint', () => {
    execFileSync(bin('buf'), ['lint'], { cwd: path.join(root, 'proto'), stdio: 'pipe' });
  });

  it('match the committed generated TypeScript (CI fails on stale code)', () => {
    const out = mkdtempSync(path.join(os.tmpdir(), 'contracts-'));
    const template = JSON.stringify({ version: 'v2', plugins: [{ local: bin('protoc-gen-es'), out, opt: ['target=ts', 'import_extension=none'] }] });
    execFileSync(bin('buf'), ['generate', '--template', template], { cwd: path.join(root, 'proto'), stdio: 'pipe' });
    const committedDir = path.join(root, 'libs/contracts/src/gen');
    const fresh = listFiles(out).sort();
    expect(listFiles(committedDir).sort()).toEqual(fresh);
    for (const file of fresh) {
      expect(readFileSync(path.join(committedDir, file), 'utf8'), `${file} is stale: run npm run generate`).toBe(readFileSync(path.join(out, file), 'utf8'));
    }
  });

  it('round-trip a UsageEvent through binary and JSON, as producers and consumers do', () => {
    const event = create(events.UsageEventSchema, {
      eventId: 'e1', tenantId: 't1', model: 'm', inputTokens: 12, outputTokens: 34, costMicros: 56n, status: events.UsageStatus.ABORTED,
    });
    expect(fromBinary(events.UsageEventSchema, toBinary(events.UsageEventSchema, event))).toEqual(event);
    const json = toJsonString(events.UsageEventSchema, event);
    expect(JSON.parse(json)).toMatchObject({ eventId: 'e1', costMicros: '56', status: 'USAGE_STATUS_ABORTED' });
    expect(fromJsonString(events.UsageEventSchema, json)).toEqual(event);
  });

  it('register versioned topic names', () => {
    for (const topic of Object.values(Topics)) expect(topic).toMatch(/\.v\d+$/);
  });
});
