/**
 * Text formatting shared by the commands: aligned tables, Docker-style sizes and relative times.
 */

/** Renders rows under headers as left-aligned columns separated by three spaces, as the docker CLI does. */
export function table(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!)))
      .join('   ')
      .trimEnd();
  return [line(headers), ...rows.map(line)].join('\n') + '\n';
}

/** Sizes in decimal units with 3 significant digits, like `docker images` (`4.26MB`, `1.2GB`, `0B`). */
export function humanSize(bytes: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB', 'PB'];
  let v = bytes;
  let i = 0;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return `${i === 0 ? v : Number(v.toPrecision(3))}${units[i]}`;
}

/** Sizes in binary units for progress and reports (`51.2 MiB`). */
export function humanBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = bytes;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${v} B` : `${v.toFixed(1)} ${units[i]}`;
}

/** "2 hours ago", "3 weeks ago", "About a minute ago" — Docker's wording for CREATED columns. */
export function timeAgo(when: Date | string | undefined, now: Date = new Date()): string {
  if (!when) return 'N/A';
  const t = typeof when === 'string' ? new Date(when) : when;
  if (Number.isNaN(t.getTime())) return 'N/A';
  const s = Math.max(0, (now.getTime() - t.getTime()) / 1000);
  const ago = (v: number, unit: string) => `${v} ${unit}${v === 1 ? '' : 's'} ago`;
  if (s < 1) return 'Less than a second ago';
  if (s < 60) return ago(Math.floor(s), 'second');
  if (s < 120) return 'About a minute ago';
  if (s < 3600) return ago(Math.floor(s / 60), 'minute');
  if (s < 7200) return 'About an hour ago';
  if (s < 48 * 3600) return ago(Math.floor(s / 3600), 'hour');
  if (s < 14 * 86400) return ago(Math.floor(s / 86400), 'day');
  if (s < 60 * 86400) return ago(Math.floor(s / (7 * 86400)), 'week');
  if (s < 2 * 365 * 86400) return ago(Math.floor(s / (30 * 86400)), 'month');
  return ago(Math.floor(s / (365 * 86400)), 'year');
}
