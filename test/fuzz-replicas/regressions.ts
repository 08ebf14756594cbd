/**
 * Programs the replica fuzz replays on every run: hand-picked ones that pin its main paths, and
 * every program it found failing (add the printed counterexample once the bug is fixed).
 */
import type { Program } from './model.js';

/** A program and what it pins. */
export interface Regression {
  name: string;
  program: Program;
}

/** The regressions, oldest first. */
export const regressions: Regression[] = [
  {
    // Both standbys paused: token reads must run on the primary (wait 0) or wait and see the
    // writes (wait 150 ms); the tokenless reads beside them may be stale, never torn.
    name: 'both standbys paused: each client reads its writes with its token, on every app',
    program: {
      env: [
        { kind: 'pause', standby: 0 },
        { kind: 'pause', standby: 1 },
        { kind: 'sleep', ms: 120 },
        { kind: 'resume', standby: 1 },
      ],
      clients: [
        [
          { delay: 5, op: { kind: 'request', app: 1, rows: 2, fail: false } },
          {
            delay: 0,
            op: {
              kind: 'read',
              app: 0,
              via: 'httpAtomic',
              carry: 'option',
              withToken: true,
              copies: 1,
            },
          },
          {
            delay: 0,
            op: {
              kind: 'read',
              app: 2,
              via: 'directReport',
              carry: 'consistentWith',
              withToken: true,
              copies: 3,
            },
          },
          {
            delay: 0,
            op: {
              kind: 'read',
              app: 3,
              via: 'httpChild',
              carry: 'option',
              withToken: false,
              copies: 2,
            },
          },
        ],
        [
          {
            delay: 5,
            op: {
              kind: 'atomic',
              app: 3,
              carry: 'option',
              rows: 1,
              nested: { rows: 1, fail: true },
              fail: false,
            },
          },
          {
            delay: 0,
            op: { kind: 'commitMid', app: 2, before: 1, after: 1, readAfter: true, fail: true },
          },
          {
            delay: 0,
            op: {
              kind: 'read',
              app: 1,
              via: 'directAtomic',
              carry: 'option',
              withToken: true,
              copies: 1,
            },
          },
        ],
      ],
    },
  },
  {
    // Failed writes carrying a token: no token comes back (HTTP) or it stays the same (outside
    // HTTP), and none of their rows is ever seen.
    name: 'failed writes move no token and leave nothing, a child commit before a failure does',
    program: {
      env: [{ kind: 'pause', standby: 0 }],
      clients: [
        [
          { delay: 0, op: { kind: 'request', app: 0, rows: 1, fail: false } },
          {
            delay: 0,
            op: { kind: 'request', app: 0, rows: 2, nested: { rows: 1, fail: false }, fail: true },
          },
          {
            delay: 0,
            op: { kind: 'atomic', app: 1, carry: 'consistentWith', rows: 1, fail: true },
          },
          {
            delay: 0,
            op: { kind: 'child', app: 0, own: 1, child: 1, childFail: false, fail: true },
          },
          {
            delay: 0,
            op: {
              kind: 'read',
              app: 0,
              via: 'httpReport',
              carry: 'option',
              withToken: true,
              copies: 1,
            },
          },
        ],
        [
          {
            delay: 0,
            op: { kind: 'child', app: 1, own: 0, child: 2, childFail: true, fail: true },
          },
          {
            delay: 0,
            op: {
              kind: 'read',
              app: 1,
              via: 'directAtomic',
              carry: 'option',
              withToken: true,
              copies: 1,
            },
          },
        ],
      ],
    },
  },
];
