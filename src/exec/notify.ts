/**
 * Webhooks: the spec's `notify:` URLs receive one JSON POST per tag written. A failing hook is
 * reported as a warning and never fails the apply (the registry write already happened).
 */

/** The JSON body of one notification. */
export interface PushNotification {
  event: 'push';
  project: string;
  image: string;
  ref: string;
  repository: string;
  digest: string;
}

/** POSTs `body` to every URL (5 s timeout each); returns the failures. */
export async function notifyPushed(urls: readonly string[], body: PushNotification): Promise<{ url: string; message: string }[]> {
  const failures: { url: string; message: string }[] = [];
  await Promise.all(
    urls.map(async (url) => {
      try {
        const r = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', 'user-agent': 'dimg' }, body: JSON.stringify(body), signal: AbortSignal.timeout(5000) });
        if (!r.ok) failures.push({ url: redactUrl(url), message: `answered ${r.status}` });
        await r.body?.cancel();
      } catch (e) {
        failures.push({ url: redactUrl(url), message: (e as Error).message });
      }
    }),
  );
  return failures;
}

/** A URL without userinfo or query (either may carry a token). */
function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    u.username = '';
    u.password = '';
    u.search = u.search ? '?…' : '';
    return u.toString();
  } catch {
    return '(invalid URL)';
  }
}
