/**
 * Secret redaction: the ONE place where text that may leave dimg (error messages, logs, progress) is
 * scrubbed of credentials. The transport runs every message it produces through a Redactor that knows
 * the secrets it has handled (passwords, tokens, base64 `auth` strings), and the patterns below catch
 * header-shaped secrets even when they were never registered.
 */

const PLACEHOLDER = '[REDACTED]';

// Header- and query-shaped secrets. Order matters only for readability: each pattern is independent.
const PATTERNS: RegExp[] = [
  /\b(authorization\s*[:=]\s*)("?)[^\s",}]+(?:\s+[^\s",}]+)?/gi,
  /\b(Basic\s+)()[A-Za-z0-9+/=._-]{4,}/g,
  /\b(Bearer\s+)()[A-Za-z0-9+/=._~-]{4,}/g,
  /([?&](?:access_token|token|password|refresh_token|_state)=)()[^&\s"]+/gi,
  /("(?:auth|password|identitytoken|registrytoken|token|access_token|refresh_token|Secret)"\s*:\s*")()[^"]*/g,
];

/**
 * Scrubs secrets from text. `add()` registers a secret (and its base64 `user:pass` forms are the
 * caller's to add); `redact()` replaces every registered secret and every header/query/JSON-shaped
 * credential with `[REDACTED]`. Secrets shorter than 4 characters are still registered (a short
 * password is still a password) but only replaced as whole words, to avoid mangling unrelated text.
 */
export class Redactor {
  private readonly secrets = new Set<string>();

  /** Remembers `secret` so that later `redact()` calls remove it. Empty values are ignored. */
  add(...secrets: (string | undefined)[]): void {
    for (const s of secrets) {
      if (!s) continue;
      this.secrets.add(s);
      // The same secret often travels URL-encoded (query strings) or base64-encoded (Basic headers).
      const enc = encodeURIComponent(s);
      if (enc !== s) this.secrets.add(enc);
    }
  }

  /** Registers the password and the base64 `user:password` string a Basic header would carry. */
  addBasic(username: string, password: string): void {
    this.add(password, Buffer.from(`${username}:${password}`).toString('base64'));
  }

  /** `text` with every known or recognisable secret replaced by `[REDACTED]`. */
  redact(text: string): string {
    let out = text;
    // Longest first so a secret containing another is removed whole.
    for (const s of [...this.secrets].sort((a, b) => b.length - a.length)) {
      if (s.length >= 4) out = out.split(s).join(PLACEHOLDER);
      else out = out.replace(new RegExp(`\\b${escapeRe(s)}\\b`, 'g'), PLACEHOLDER);
    }
    return redactPatterns(out);
  }
}

/** Pattern-only redaction, for text produced where no Redactor is at hand. */
export function redactPatterns(text: string): string {
  let out = text;
  for (const re of PATTERNS) out = out.replace(re, (_m, pre: string, quote: string) => `${pre}${quote}${PLACEHOLDER}`);
  return out;
}

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
