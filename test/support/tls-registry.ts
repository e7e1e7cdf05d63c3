/**
 * The real registry serving HTTPS with a certificate from a throw-away CA (made with openssl), for
 * tests of certificate verification. The certificate names `registry.dimg.test` (resolved to
 * 127.0.0.1 inside dimg by dns-preload.ts) and 127.0.0.1.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { freePort, launchRegistry } from './registry.js';
import { requireTool, run } from './tools.js';
import { tempDir } from './tmp.js';

/** The name the certificate is issued to. */
export const TLS_HOSTNAME = 'registry.dimg.test';

/** A running TLS registry. `host` is `registry.dimg.test:PORT`; `directUrl` reaches it as https://127.0.0.1:PORT. */
export interface TlsRegistry {
  host: string;
  directUrl: string;
  /** PEM of the CA that signed the server certificate. */
  caFile: string;
  /** Env for dimg children: NODE_OPTIONS preloading the resolver for *.dimg.test. */
  env: NodeJS.ProcessEnv;
  stop(): Promise<void>;
}

/** Makes a CA and a server certificate in `dir` with openssl; returns their paths. */
export function makeCertificates(dir: string, names: string[]): { ca: string; cert: string; key: string } {
  const openssl = requireTool('openssl', 'openssl');
  const sh = (args: string[]) => run(openssl, args, { cwd: dir });
  sh(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=dimg test CA']);
  sh(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'srv.key', '-out', 'srv.csr', '-subj', `/CN=${names[0]}`]);
  const san = names.map((n) => (/^\d+\.\d+\.\d+\.\d+$/.test(n) ? `IP:${n}` : `DNS:${n}`)).join(',');
  writeFileSync(join(dir, 'ext.cnf'), `subjectAltName=${san}\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n`);
  sh(['x509', '-req', '-in', 'srv.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'srv.pem', '-days', '2', '-extfile', 'ext.cnf']);
  return { ca: join(dir, 'ca.pem'), cert: join(dir, 'srv.pem'), key: join(dir, 'srv.key') };
}

/** Starts docker-registry with `http.tls` on a free 127.0.0.1 port and waits until it answers. */
export async function startTlsRegistry(): Promise<TlsRegistry> {
  const dir = tempDir(undefined, 'dimg-tls-registry-');
  mkdirSync(join(dir, 'storage'));
  const certs = makeCertificates(dir, [TLS_HOSTNAME, '127.0.0.1']);
  const port = await freePort();
  const config = `version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: ${join(dir, 'storage')}
  delete:
    enabled: true
http:
  addr: 127.0.0.1:${port}
  secret: dimg-tls-test
  tls:
    certificate: ${certs.cert}
    key: ${certs.key}
`;
  const directUrl = `https://127.0.0.1:${port}`;
  const ca = readFileSync(certs.ca);
  const https = await import('node:https');
  const running = await launchRegistry(dir, config, `docker-registry (TLS) on ${directUrl}`, () =>
    new Promise<boolean>((resolve) => {
      const req = https.get(`${directUrl}/v2/`, { ca }, (res) => {
        res.resume();
        resolve(res.statusCode === 200);
      });
      req.on('error', () => resolve(false));
    }),
  );
  const preload = pathToFileURL(join(fileURLToPath(new URL('.', import.meta.url)), 'dns-preload.js')).href;
  return {
    host: `${TLS_HOSTNAME}:${port}`,
    directUrl,
    caFile: certs.ca,
    env: { NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --import=${preload}`.trim() },
    stop: running.stop,
  };
}
