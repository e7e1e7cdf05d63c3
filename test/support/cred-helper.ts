/**
 * A real credential helper for tests: a shell script `docker-credential-dimgtest` speaking Docker's
 * helper protocol (get/store/erase/list) over files in its own directory. Put `dir` on PATH and name
 * `dimgtest` in config.json's credsStore or credHelpers.
 */
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** An installed helper: its directory (for PATH), and a view of what it holds and was asked. */
export interface TestCredHelper {
  /** Directory holding the script; prepend to PATH. */
  dir: string;
  /** The helper's name as config.json spells it. */
  name: string;
  /** Actions it ran, in order (`get`, `store`, `erase`, `list`). */
  calls(): string[];
  /** Pre-loads a credential, as `store` would. */
  put(serverUrl: string, username: string, secret: string): void;
  /** The stored `{ServerURL,Username,Secret}` for a server URL, if any. */
  get(serverUrl: string): { ServerURL: string; Username: string; Secret: string } | undefined;
}

const SCRIPT = `#!/bin/sh
# Test credential helper: one file per server URL (hex-encoded name) in $STORE.
STORE="$(dirname "$0")/store"
mkdir -p "$STORE"
key() { printf '%s' "$1" | od -An -tx1 | tr -d ' \\n'; }
echo "$1" >> "$STORE/calls.log"
case "$1" in
  get)
    read -r url
    f="$STORE/$(key "$url")"
    if [ -f "$f" ]; then cat "$f"; else echo "credentials not found in native keychain"; exit 1; fi ;;
  store)
    data=$(cat)
    url=$(printf '%s' "$data" | sed -n 's/.*"ServerURL":"\\([^"]*\\)".*/\\1/p')
    [ -n "$url" ] || { echo "no ServerURL"; exit 1; }
    printf '%s' "$data" > "$STORE/$(key "$url")" ;;
  erase)
    read -r url
    f="$STORE/$(key "$url")"
    if [ -f "$f" ]; then rm -f "$f"; else echo "credentials not found in native keychain"; exit 1; fi ;;
  list)
    echo '{}' ;;
  *)
    echo "unknown action $1"; exit 1 ;;
esac
`;

function hexKey(s: string): string {
  return Buffer.from(s, 'utf8').toString('hex');
}

/** Writes the helper script into `dir` (created if needed). */
export function installCredHelper(dir: string): TestCredHelper {
  mkdirSync(join(dir, 'store'), { recursive: true });
  const script = join(dir, 'docker-credential-dimgtest');
  writeFileSync(script, SCRIPT);
  chmodSync(script, 0o755);
  const store = join(dir, 'store');
  return {
    dir,
    name: 'dimgtest',
    calls: () => (existsSync(join(store, 'calls.log')) ? readFileSync(join(store, 'calls.log'), 'utf8').split('\n').filter(Boolean) : []),
    put: (serverUrl, username, secret) => writeFileSync(join(store, hexKey(serverUrl)), JSON.stringify({ ServerURL: serverUrl, Username: username, Secret: secret })),
    get: (serverUrl) => {
      const f = join(store, hexKey(serverUrl));
      return existsSync(f) ? (JSON.parse(readFileSync(f, 'utf8')) as { ServerURL: string; Username: string; Secret: string }) : undefined;
    },
  };
}
