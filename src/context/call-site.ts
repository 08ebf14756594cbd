/**
 * Where the application's code made a call into the library: the first frame of a captured stack
 * that belongs neither to this library nor to TypeORM (nor to Node.js itself). Only the slow
 * paths use it (a statement outside any unit of work), so a stack is captured there and nowhere
 * else.
 */

/** A captured stack, formatted only when read (V8 formats `stack` lazily). */
export interface CapturedStack {
  stack?: string;
}

/**
 * Frames captured: enough to pass this library's and TypeORM's own frames above the caller (at
 * most 7: a `TreeRepository` method calling others), few enough to stay cheap (about 3 µs).
 */
const FRAMES = 15;

/** Frames of TypeORM, wherever the package manager put it. */
const TYPEORM = /[\\/]node_modules[\\/]typeorm[\\/]/;

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
 * The application's frame of `captured`, as V8 wrote it (`UsersJob.run (/app/src/users.job.ts:12:5)`),
 * or undefined if the stack holds none (a bundler put everything in one file, or the stack was cut).
 */
export function callSite(captured: CapturedStack): string | undefined {
  const lines = typeof captured.stack === 'string' ? captured.stack.split('\n') : [];
  for (const line of lines.slice(1)) {
    const frame = FRAME.exec(line)?.[1];
    const location = frame === undefined ? undefined : LOCATION.exec(frame)?.[1];
    if (location === undefined || location.startsWith('node:') || TYPEORM.test(location)) continue;
    if (LIBRARY !== undefined && location.startsWith(LIBRARY)) continue;
    return frame;
  }
  return undefined;
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
