/**
 * What a build reports while it runs. The CLI renders these (TTY or plain); the planner's executor
 * reuses them. Events are plain data; nothing here writes to a terminal.
 */

/** One build event; `image` is the spec key of the image being built. */
export type BuildEvent =
  | { type: 'image-start'; image: string; steps: number }
  | { type: 'step-start'; image: string; index: number; total: number; display: string }
  | { type: 'step-output'; image: string; index: number; chunk: Buffer }
  | { type: 'step-done'; image: string; index: number; total: number; display: string; cached: boolean; durationMs: number }
  | { type: 'notice'; image: string; message: string }
  | { type: 'image-done'; image: string; digest: string; id: string; tags: string[]; durationMs: number }
  | { type: 'image-failed'; image: string; message: string };

/** Receives events; must not throw. */
export type BuildListener = (e: BuildEvent) => void;

/** `[web 3/7] RUN mkdir -p /srv`, shortened to `width` characters with an ellipsis. */
export function stepLine(image: string, index: number, total: number, display: string, width = 100): string {
  const head = `[${image} ${index}/${total}] `;
  const flat = display.replace(/\s*\n\s*/g, ' ');
  const room = Math.max(20, width - head.length);
  return head + (flat.length > room ? `${flat.slice(0, room - 1)}…` : flat);
}
