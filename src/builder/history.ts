/**
 * How steps read in `created_by` of the image history and in build output, Docker-style:
 * `RUN /bin/sh -c make`, `COPY site/ /srv/`, `ENV PORT=8080`, `CMD ["httpd","-f"]`.
 */
import type { Step } from '../specfile/model.js';

/** The instruction text of a step, given the shell in effect for shell-form RUN. */
export function describeStep(step: Step, shell: readonly string[]): string {
  switch (step.kind) {
    case 'run':
      return step.form === 'shell' ? `RUN ${[...shell, ...step.command].join(' ')}` : `RUN ${JSON.stringify(step.command)}`;
    case 'copy':
    case 'add': {
      const flags: string[] = [];
      if (step.from) flags.push(`--from=${step.from.kind === 'image' ? step.from.key : step.from.ref}`);
      if (step.chown) flags.push(`--chown=${step.chown}`);
      if (step.chmod) flags.push(`--chmod=${step.chmod}`);
      return [step.kind.toUpperCase(), ...flags, ...step.src, step.to].join(' ');
    }
    case 'env':
      return `ENV ${Object.entries(step.vars).map(([k, v]) => `${k}=${v}`).join(' ')}`;
    case 'workdir':
      return `WORKDIR ${step.path}`;
    case 'user':
      return `USER ${step.user}`;
    case 'label':
      return `LABEL ${Object.entries(step.labels).map(([k, v]) => `${k}=${v}`).join(' ')}`;
    case 'expose':
      return `EXPOSE ${step.ports.join(' ')}`;
    case 'volume':
      return `VOLUME ${JSON.stringify(step.paths)}`;
    case 'shell':
      return `SHELL ${JSON.stringify(step.argv)}`;
    case 'stopsignal':
      return `STOPSIGNAL ${step.signal}`;
    case 'healthcheck':
      return step.test[0] === 'NONE' ? 'HEALTHCHECK NONE' : `HEALTHCHECK ${step.test[0] === 'CMD-SHELL' ? `CMD ${step.test.slice(1).join(' ')}` : `CMD ${JSON.stringify(step.test.slice(1))}`}`;
  }
}
