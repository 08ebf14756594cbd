/**
 * Where the application's code made a call into the library: the first frame of a captured stack
 * that belongs neither to this library nor to a package (TypeORM, a helper library in
 * `node_modules`) nor to Node.js itself. Only the slow
 * paths use it (a statement outside any unit of work), so a stack is captured there and nowhere
 * else.
 */

import { logger } from '../logger.js';

/** A captured stack, formatted only when read (V8 formats `stack` lazily). */
export interface CapturedStack {
  stack?: string;
}

/**
 * Frames captured: enough to pass this library's and TypeORM's own frames above the caller (at
 * most 7: a `TreeRepository` method calling others) and a helper package's, few enough to stay
 * cheap (a few µs).
 */
const FRAMES = 25;

/** Frames of TypeORM, wherever the package manager put it. */
const TYPEORM = /[\\/]node_modules[\\/]typeorm[\\/]/;

/** Frames of any installed package. */
const PACKAGE = /[\\/]node_modules[\\/]/;

/** Where the application called from: the frame as V8 wrote it, and its file and line. */
export interface CallSite {
  /** `UsersJob.run (/app/src/users.job.ts:12:5)`. */
  frame: string;
  /** `/app/src/users.job.ts:12`: one line of code, whichever object or column called from it. */
  line: string;
}

/** `name (file:line:column)` or `file:line:column`, as V8 formats a frame. */
const FRAME = /^\s*at (?:async )?(.*?)\s*$/;

/** A frame's location: a file with line and column (not `node:internal`, `native`, `index 0`). */
const LOCATION = /\(?([^()]+:\d+:\d+)\)?$/;

/** The directory this library's files are in (`src/` or `dist/`), found from this file's own frame. */
const LIBRARY = libraryRoot();

/** Captures the current stack, deep enough to reach the application's frame. */
export function captureStack(): CapturedStack {
  const holder: CapturedStack = {};
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = FRAMES;
  try {
    Error.captureStackTrace(holder, captureStack);
  } finally {
    Error.stackTraceLimit = limit;
  }
  return holder;
}

/**
 * The application's frame of `captured`: the first outside this library, Node.js and every
 * package; else (all the code is in packages, or bundled) the first outside this library, Node.js
 * and TypeORM. Undefined if the stack holds none (the stack was cut).
 */
export function callSite(captured: CapturedStack): CallSite | undefined {
  const lines = typeof captured.stack === 'string' ? captured.stack.split('\n') : [];
  let fallback: CallSite | undefined;
  for (const line of lines.slice(1)) {
    const frame = FRAME.exec(line)?.[1];
    const location = frame === undefined ? undefined : LOCATION.exec(frame)?.[1];
    if (location === undefined || location.startsWith('node:') || TYPEORM.test(location)) continue;
    if (LIBRARY !== undefined && location.startsWith(LIBRARY)) continue;
    const site = { frame: frame!, line: location.replace(/:\d+$/, '') };
    if (!PACKAGE.test(location)) return site;
    fallback ??= site;
  }
  return fallback;
}

/** What a message names as the call site when the stack holds no frame of the application. */
export const UNKNOWN_SITE = 'an unknown call site (no frame of your code in the stack)';

/**
 * Warnings logged once per call site: the call sites already warned, of one app (each app holds
 * its own), keyed by the line of code (whichever object or column called from it) and a scope
 * (a data source's name, when the warning is about one).
 */
export class CallSiteWarnings {
  private readonly warned = new Set<string>();

  /**
   * Logs `message(site)` unless the line of code `captured` came from was warned about already
   * (in `scope`): `site` is the application's frame, or `unknown` if the stack holds none.
   */
  warn(
    captured: CapturedStack,
    message: (site: string) => string,
    scope?: string,
    unknown: string = UNKNOWN_SITE,
  ): void {
    const found = callSite(captured);
    const site = found?.frame ?? unknown;
    const line = found?.line ?? site;
    const key = scope === undefined ? line : `${scope}\n${line}`;
    if (this.warned.has(key)) return;
    this.warned.add(key);
    logger.warn(message(site));
  }
}

function libraryRoot(): string | undefined {
  const own: CapturedStack = {};
  Error.captureStackTrace(own);
  const line = own.stack?.split('\n')[1]?.trim();
  const file = line === undefined ? undefined : LOCATION.exec(line)?.[1];
  // This file is <root>/context/call-site.{ts,js}, <root> being src/ or dist/.
  return file === undefined
    ? undefined
    : /^(.*[\\/])context[\\/]call-site\.[cm]?[jt]s:/.exec(file)?.[1];
}
