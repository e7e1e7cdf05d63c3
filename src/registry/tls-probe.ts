/**
 * Does a registry endpoint speak TLS? The scheme decision for registries marked insecure, which dimg
 * treats as Docker treats `insecure-registries`: HTTPS first without certificate verification, plain
 * HTTP only when the endpoint does not speak TLS at all. Decided once per registry and run by a TLS
 * handshake (the certificate is not looked at: verification is skipped for these registries anyway).
 */
import tls from 'node:tls';
import { isIP } from 'node:net';
import { hostnameOf } from './hosts.js';

/** What a handshake attempt showed: TLS spoken, something else spoken, or no TCP connection at all. */
export type TlsProbeResult = 'tls' | 'plain' | 'unreachable';

/** How long a connected endpoint may stay silent after our ClientHello before it counts as not TLS. */
export const TLS_PROBE_TIMEOUT_MS = 5000;

/**
 * Attempts a TLS handshake with `host` (`name[:port]`, port 443 when absent).
 * - `tls`: the handshake completed, or the server answered with a TLS alert (it speaks TLS but
 *   dislikes something; the real request will report that error).
 * - `plain`: the TCP connection opened but what came back was not TLS (an HTTP server answering
 *   400 to the ClientHello gives "wrong version number"), the peer closed without TLS, or it stayed
 *   silent for `timeoutMs`.
 * - `unreachable`: no TCP connection (refused, no route, unknown name); nothing is known.
 * Never rejects.
 */
export function probeTls(host: string, timeoutMs = TLS_PROBE_TIMEOUT_MS): Promise<TlsProbeResult> {
  const hostname = hostnameOf(host);
  const port = Number(host.slice(host.lastIndexOf(':') + 1));
  const hasPort = host.lastIndexOf(':') > host.lastIndexOf(']') && Number.isInteger(port);
  return new Promise((resolve) => {
    let connected = false;
    let done = false;
    const finish = (r: TlsProbeResult): void => {
      if (done) return;
      done = true;
      socket.destroy();
      resolve(r);
    };
    const socket = tls.connect({
      host: hostname,
      port: hasPort ? port : 443,
      // SNI is only sent for names (RFC 6066 forbids IP literals there).
      servername: isIP(hostname) ? undefined : hostname,
      rejectUnauthorized: false,
    });
    socket.once('connect', () => {
      connected = true;
    });
    socket.once('secureConnect', () => finish('tls'));
    socket.on('error', (e: NodeJS.ErrnoException) => {
      if (!connected) return finish('unreachable');
      // An alert is a TLS record: the peer speaks TLS (e.g. it wants a client certificate).
      finish(/ALERT/i.test(e.code ?? '') ? 'tls' : 'plain');
    });
    socket.once('close', () => finish(connected ? 'plain' : 'unreachable'));
    socket.setTimeout(timeoutMs, () => finish(connected ? 'plain' : 'unreachable'));
  });
}
