/**
 * Platforms: parsing `os/arch[/variant]`, the host's platform, and matching index entries.
 */
import { DimgError } from '../errors.js';
import type { Platform } from './types.js';

const NODE_TO_GOARCH: Record<string, string> = { x64: 'amd64', arm64: 'arm64', arm: 'arm', ia32: '386', ppc64: 'ppc64le', s390x: 's390x', riscv64: 'riscv64' };

/** The platform of the machine dimg runs on, in Go's names (`linux/amd64`). */
export function hostPlatform(): Platform {
  const architecture = NODE_TO_GOARCH[process.arch] ?? process.arch;
  const p: Platform = { os: process.platform === 'win32' ? 'windows' : process.platform, architecture };
  if (architecture === 'arm64') p.variant = 'v8';
  return p;
}

/** Parses `os/arch[/variant]`, throwing PLATFORM_INVALID with the expected shape. */
export function parsePlatform(s: string): Platform {
  const parts = s.split('/');
  if (parts.length < 2 || parts.length > 3 || parts.some((p) => !/^[a-z0-9._-]+$/.test(p))) {
    throw new DimgError('PLATFORM_INVALID', `invalid platform "${s}"`, 'a platform looks like linux/amd64 or linux/arm64/v8');
  }
  const p: Platform = { os: parts[0]!, architecture: parts[1]! };
  if (parts[2]) p.variant = parts[2];
  return p;
}

/** `os/arch[/variant]`. */
export function formatPlatform(p: Platform): string {
  return [p.os, p.architecture, p.variant].filter(Boolean).join('/');
}

/**
 * True when `candidate` satisfies `wanted`: same os and architecture, and the same variant when
 * `wanted` names one (arm64's default `v8` matches an entry without a variant).
 */
export function platformMatches(wanted: Platform, candidate: Platform | undefined): boolean {
  if (!candidate) return false;
  if (wanted.os !== candidate.os || wanted.architecture !== candidate.architecture) return false;
  if (!wanted.variant) return true;
  const cv = candidate.variant ?? (candidate.architecture === 'arm64' ? 'v8' : undefined);
  return cv === wanted.variant;
}
