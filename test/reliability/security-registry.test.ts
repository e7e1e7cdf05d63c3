/**
 * Registry answers and transport that dimg must not trust (issue #20):
 *  - a manifest over the size limit is refused once, as too large, naming the reference and the
 *    limit; it is not mistaken for a broken connection and fetched again.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { dimg } from '../support/cli.js';
import { tempDir } from '../support/tmp.js';

/** A loopback HTTP server for `handler`, stopped when the test ends; resolves to its `host:port`. */
async function serve(t: { after(fn: () => unknown): void }, handler: http.RequestListener): Promise<string> {
  const srv = http.createServer(handler);
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  t.after(
    () =>
      new Promise<void>((r) => {
        srv.closeAllConnections();
        srv.close(() => r());
      }),
  );
  return `127.0.0.1:${(srv.address() as AddressInfo).port}`;
}

test('a manifest over the size limit is refused once as too large, naming the reference and the limit', async (t) => {
  const big = Buffer.alloc(9 << 20, 0x20);
  const gets: Record<string, number> = {};
  const host = await serve(t, (req, res) => {
    if (req.url === '/v2/') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{}');
      return;
    }
    const tag = /\/manifests\/(\w+)$/.exec(req.url ?? '')?.[1] ?? '?';
    gets[tag] = (gets[tag] ?? 0) + 1;
    // `sized` states its length up front; `chunked` only runs over the limit while it is read.
    const headers: http.OutgoingHttpHeaders = { 'content-type': 'application/vnd.oci.image.manifest.v1+json' };
    if (tag === 'sized') headers['content-length'] = big.length;
    res.writeHead(200, headers);
    res.end(big);
  });
  const dir = tempDir(t);
  for (const tag of ['sized', 'chunked']) {
    const r = await dimg(['image', 'pull', '--insecure', `${host}/big/manifest:${tag}`], { root: dir, env: { DIMG_DEBUG: '1' }, timeoutMs: 60_000 });
    assert.equal(r.code, 1, `${tag}: ${r.stderr}`);
    assert.match(r.stderr, /^error: .*too large/m, `${tag}: says too large:\n${r.stderr}`);
    assert.match(r.stderr, new RegExp(`^error: .*big/manifest.*${tag}`, 'm'), `${tag}: names the reference:\n${r.stderr}`);
    assert.match(r.stderr, /^error: .*8 MiB/m, `${tag}: names the limit:\n${r.stderr}`);
    assert.match(r.stderr, /^hint: /m, tag);
    assert.doesNotMatch(r.stderr, /truncat|mid-body|connection/i, `${tag}: not reported as a connection problem:\n${r.stderr}`);
    assert.doesNotMatch(r.stderr, /retrying/, `${tag}: not retried:\n${r.stderr}`);
    assert.equal(gets[tag], 1, `${tag}: the manifest was requested ${gets[tag]} times`);
  }
});
