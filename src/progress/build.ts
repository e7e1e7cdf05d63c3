/**
 * Rendering build events as step lines, for `dimg build`, `dimg apply` and `dimg watch`. It lives in
 * the library, not the CLI, because the watch loop renders the same lines.
 */
import { stepLine, type BuildEvent } from '../builder/events.js';
import { OutputTail } from '../builder/output-tail.js';
import { humanDuration } from './duration.js';

/**
 * Renders build events: a line per step (`[web 3/7] RUN … CACHED` / `0.4s`). On a TTY the step's
 * output streams live under its start line; otherwise only its last few lines are shown when it ends.
 */
export function buildRenderer(tty: boolean, out: (s: string) => void = (s) => void process.stdout.write(s)): (e: BuildEvent) => void {
  const tails = new Map<string, OutputTail>();
  const width = Math.max(60, (process.stdout.columns ?? 100) - 12);
  return (e) => {
    switch (e.type) {
      case 'step-start':
        if (tty) out(`${stepLine(e.image, e.index, e.total, e.display, width)}\n`);
        break;
      case 'step-output': {
        if (tty) {
          out(e.chunk.toString('utf8'));
          break;
        }
        const k = `${e.image}/${e.index}`;
        let tail = tails.get(k);
        if (!tail) tails.set(k, (tail = new OutputTail(4096)));
        tail.push(e.chunk);
        break;
      }
      case 'step-done': {
        out(`${stepLine(e.image, e.index, e.total, e.display, width)}  ${e.cached ? 'CACHED' : humanDuration(e.durationMs)}\n`);
        const tail = tails.get(`${e.image}/${e.index}`);
        if (tail) {
          for (const l of tail.lines(5)) out(`  | ${l}\n`);
          tails.delete(`${e.image}/${e.index}`);
        }
        break;
      }
      case 'notice':
        out(`[${e.image}] note: ${e.message}\n`);
        break;
      case 'image-done':
        break;
      default:
        break;
    }
  };
}

