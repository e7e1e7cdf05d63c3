import { test } from 'node:test';
import assert from 'node:assert/strict';
import { executePlan, type ExecutorPorts } from '../../src/exec/execute.js';
import type { Action } from '../../src/plan/types.js';
import { sha256 } from '../../src/oci/digest.js';

const input = sha256('x');
const build = (image: string, dependsOn: string[] = []): Action => ({ kind: 'build', id: `build:${image}`, image, dependsOn, inputDigest: input, reason: 'new' });
const push = (image: string, ref: string): Action => ({ kind: 'push', id: `push:${ref}`, image, dependsOn: [`build:${image}`], inputDigest: input, reason: 'new tag', target: { registry: 'r', ref } });

test('actions run after their dependencies; a failure skips only its dependants', async () => {
  const order: string[] = [];
  const ports: ExecutorPorts = {
    async build(a) {
      await new Promise((r) => setTimeout(r, a.image === 'base' ? 30 : 1));
      if (a.image === 'bad') throw new Error('boom');
      order.push(a.id);
    },
    async push(a) {
      order.push(a.id);
    },
    async retag() {},
    async delete() {},
  };
  const plan = { actions: [build('base'), build('web', ['build:base']), push('web', 'r/web:1'), build('bad'), push('bad', 'r/bad:1'), build('other')] };
  const res = await executePlan(plan, ports, { parallelism: 2 });
  assert.ok(order.indexOf('build:base') < order.indexOf('build:web'));
  assert.ok(order.indexOf('build:web') < order.indexOf('push:r/web:1'));
  assert.deepEqual(res.failed.map((f) => f.action.id), ['build:bad']);
  assert.deepEqual(res.skipped.map((a) => a.id), ['push:r/bad:1']);
  assert.ok(order.includes('build:other'));
});

test('parallelism is bounded', async () => {
  let running = 0;
  let peak = 0;
  const slow = async () => {
    running++;
    peak = Math.max(peak, running);
    await new Promise((r) => setTimeout(r, 10));
    running--;
  };
  const ports: ExecutorPorts = { build: slow, push: slow, retag: slow, delete: slow };
  await executePlan({ actions: ['a', 'b', 'c', 'd', 'e'].map((k) => build(k)) }, ports, { parallelism: 2 });
  assert.equal(peak, 2);
});
