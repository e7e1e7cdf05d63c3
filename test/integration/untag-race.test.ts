/**
 * Deleting a tag alone races with other writers (review of issue #14): when the registry still lists
 * the tag after the throw-away manifest was deleted, untag must look again before it writes, and leave
 * a tag someone else wrote meanwhile alone. A front over the real registry plays "someone else": at
 * the first tag listing after a DELETE it re-tags the tag with another manifest.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { canonicalBytes } from '../../src/oci/canonical-json.js';
import { sha256 } from '../../src/oci/digest.js';
import { EMPTY_DESCRIPTOR } from '../../src/oci/empty.js';
import { MediaType } from '../../src/oci/media-types.js';
import { parseReference } from '../../src/oci/reference.js';
import { RegistryClient } from '../../src/registry/index.js';
import { untag } from '../../src/registry/untag.js';
import { uploadEmptyBlob } from '../../src/registry/ownership-io.js';
import { startRegistry } from '../support/registry.js';

const manifest = (note: string) => canonicalBytes({ schemaVersion: 2, mediaType: MediaType.ociManifest, config: EMPTY_DESCRIPTOR, layers: [EMPTY_DESCRIPTOR], annotations: { note } });

async function body(req: IncomingMessage): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const b of req) parts.push(b as Buffer);
  return Buffer.concat(parts);
}

test('untag leaves alone a tag another writer re-tagged while the registry still listed it', async (t) => {
  const reg = await startRegistry();
  t.after(() => reg.stop());
  const mine = manifest('written by this project');
  const theirs = manifest('written by someone else');
  const put = (tag: string, bytes: Buffer) => fetch(`${reg.url}/v2/r/app/manifests/${tag}`, { method: 'PUT', headers: { 'content-type': MediaType.ociManifest }, body: bytes });

  let sawDelete = false;
  let raced = false;
  const front = createServer(async (req, res) => {
    const data = await body(req);
    if (req.method === 'DELETE') sawDelete = true;
    if (sawDelete && !raced && req.method === 'GET' && req.url!.includes('/tags/list')) {
      raced = true;
      assert.equal((await put('t', theirs)).status, 201);
    }
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(req.headers)) if (typeof v === 'string' && k !== 'host' && k !== 'connection' && k !== 'content-length') headers[k] = v;
    const up = await fetch(`${reg.url}${req.url}`, { method: req.method, headers, body: data.length > 0 ? data : undefined, redirect: 'manual' });
    const out: Record<string, string> = {};
    up.headers.forEach((v, k) => {
      if (k !== 'content-length' && k !== 'transfer-encoding' && k !== 'connection') out[k] = v;
    });
    res.writeHead(up.status, out);
    res.end(Buffer.from(await up.arrayBuffer()));
  });
  await new Promise<void>((r) => front.listen(0, '127.0.0.1', r));
  t.after(() => front.close());
  const frontHost = `127.0.0.1:${(front.address() as AddressInfo).port}`;

  const client = new RegistryClient();
  t.after(() => client.close());
  const repo = client.repository(parseReference(`${frontHost}/r/app:t`));
  await uploadEmptyBlob(repo);
  assert.equal((await put('t', mine)).status, 201);

  const outcome = await untag(repo, 't', `${frontHost}/r/app:t`, 'proj', sha256(mine));
  assert.ok(raced, 'the other writer got in between');
  assert.deepEqual(outcome, { kind: 'moved', now: sha256(theirs) });
  const head = await fetch(`${reg.url}/v2/r/app/manifests/t`, { method: 'HEAD', headers: { accept: MediaType.ociManifest } });
  assert.equal(head.status, 200, 'the other writer\'s tag was deleted');
  assert.equal(head.headers.get('docker-content-digest'), sha256(theirs));
});
