/**
 * The generator of fuzz programs (fast-check arbitraries): what a program may contain, per engine
 * and per kit, and what is left out until a pending fix is merged.
 */
import fc from 'fast-check';
import { type OpenOp, type Program, type Step, type Unit, type Via, demand } from './model.js';

/**
 * What the test leaves out until the fix of a bug it found is merged (remove an entry to re-enable).
 * Each entry: its name, the bug, and what programs leave out while it is pending.
 * (None pending.)
 */
export const pendingFixes: string[] = [];

/** What the generator may produce for an engine. */
export interface GenOptions {
  engine: 'postgres' | 'mariadb';
  /**
   * Whether programs kill server connections. Not through a transaction pooler (PgBouncer): there
   * a killed server connection is not the client's, which stays up and gets another one.
   */
  kills: boolean;
}

const via = fc.constantFrom<Via>('atomic', 'decorator');

/** The ops of a `sessionFactory.open()` session. */
const openOps = fc.array(
  fc.constantFrom<OpenOp>('insert', 'insert', 'parallel', 'commit', 'rollback', 'throw'),
  { minLength: 1, maxLength: 5 },
);

/** A body: a few steps, maybe ending with a throwing step. */
function bodyArb(
  depth: number,
  where: 'top' | 'block',
  kit: boolean,
  options: GenOptions,
): fc.Arbitrary<Step[]> {
  const inner =
    depth > 0 ? bodyArb(depth - 1, 'block', kit, options) : fc.constant<Step[]>([{ t: 'insert' }]);
  const plain: Array<fc.Arbitrary<Step>> = [
    fc.constant<Step>({ t: 'insert' }),
    // Plain TypeORM (the DataSource's manager), which the app joins to the unit (plainTypeorm).
    fc.constant<Step>({ t: 'insert', plain: true }),
    fc.integer({ min: 2, max: 3 }).map((n): Step => ({ t: 'parallel', n })),
    fc.integer({ min: 2, max: 3 }).map((n): Step => ({ t: 'parallel', n, plain: true })),
    fc.record({ t: fc.constant('nested' as const), via, body: inner }),
    fc
      .array(inner, { minLength: 2, maxLength: 2 })
      .map((blocks): Step => ({ t: 'nestedAll', blocks })),
    fc.record({ t: fc.constant('requiresNew' as const), via, body: inner }),
    // A failed statement escaping a joined block leaves PostgreSQL's transaction aborted, so every
    // later statement of the caller fails too: a joined block fails by throwing instead.
    fc.record({ t: fc.constant('required' as const), body: inner.map(noBadEnd) }),
    fc.record({
      t: fc.constant('required' as const),
      body: inner.map(noBadEnd),
      prop: fc.constantFrom('MANDATORY' as const, 'SUPPORTS' as const),
    }),
    fc.constant<Step>({ t: 'never' }),
    fc.record({ t: fc.constant('open' as const), ops: openOps }),
  ];
  // Under the kit a statement outside a transaction runs in the test's one transaction, inside
  // whatever savepoint its unit has open: it does not commit on its own there.
  if (!kit)
    plain.push(
      fc.record({
        t: fc.constant('notSupported' as const),
        n: fc.integer({ min: 1, max: 2 }),
        throws: fc.boolean(),
      }),
    );
  // Under the kit a callback that writes from inside a REQUIRES_NEW block waits for the connection
  // its own unit holds (documented: it fails after acquireTimeout); keep callbacks at the top there.
  if (where === 'top' || !kit)
    plain.push(fc.record({ t: fc.constant('afterCommit' as const), throws: fc.boolean() }));
  if (!pendingFixes.includes('stream-writes'))
    plain.push(fc.integer({ min: 1, max: 3 }).map((n): Step => ({ t: 'stream', n })));
  if (where === 'top') {
    plain.push(fc.constantFrom<Step>({ t: 'commit' }, { t: 'rollback' }));
    plain.push(
      fc.constantFrom<Step>(
        { t: 'late', how: 'session' },
        { t: 'late', how: 'manager' },
        { t: 'late', how: 'plain' },
      ),
    );
    if (kit)
      plain.push(
        fc.constantFrom<Step>(
          { t: 'afterTest', how: 'builder' },
          { t: 'afterTest', how: 'runner' },
          { t: 'afterTest', how: 'transaction' },
        ),
      );
  }
  const ending: Array<fc.Arbitrary<Step[]>> = [
    fc.constant([]),
    fc.constant<Step[]>([{ t: 'throw' }]),
    fc.constant<Step[]>([{ t: 'bad' }]),
  ];
  if (where === 'top') {
    if (!kit && options.kills) ending.push(fc.constant<Step[]>([{ t: 'killSelf' }]));
    ending.push(fc.constant<Step[]>([{ t: 'arm', hook: 'beforeCommit' }]));
    if (options.engine === 'postgres' && !kit)
      ending.push(fc.constant<Step[]>([{ t: 'arm', hook: 'deferred' }]));
  }
  return fc
    .tuple(
      fc.array(fc.oneof(...plain), { minLength: 1, maxLength: where === 'top' ? 4 : 2 }),
      fc.oneof(
        { weight: 3, arbitrary: ending[0]! },
        ...ending.slice(1).map((arbitrary) => ({ weight: 1, arbitrary })),
      ),
    )
    .map(([steps, end]) => [...steps, ...end]);
}

/** The body with a final `bad` step turned into a `throw`. */
const noBadEnd = (body: Step[]): Step[] =>
  body.at(-1)?.t === 'bad' ? [...body.slice(0, -1), { t: 'throw' }] : body;

/** A unit of any kind. */
function unitArb(kit: boolean, options: GenOptions): fc.Arbitrary<Unit> {
  const top = bodyArb(2, 'top', kit, options);
  const noCommit = top
    .map((body) => body.filter((step) => step.t !== 'commit' && step.t !== 'rollback'))
    .filter((body) => body.length > 0);
  const failBegin = fc.oneof(
    { weight: 5, arbitrary: fc.constant(false) },
    { weight: 1, arbitrary: fc.constant(true) },
  );
  return fc.oneof(
    fc.record({
      kind: fc.constantFrom('http' as const, 'newContext' as const),
      body: top,
      failBegin,
    }),
    fc.record({ kind: fc.constant('factoryAtomic' as const), body: noCommit, failBegin }),
    fc.record({
      kind: fc.constant('transactional' as const),
      propagation: fc.constantFrom('REQUIRED' as const, 'REQUIRES_NEW' as const, 'NESTED' as const),
      body: noCommit,
      failBegin,
    }),
    fc.record({
      kind: fc.constant('open' as const),
      ops: openOps,
    }),
  );
}

/** Sometimes a kill of one of the app's server connections, some time into the program. */
function kill(kit: boolean, options: GenOptions): fc.Arbitrary<Program['kill']> {
  if (
    kit ||
    !options.kills ||
    (options.engine === 'mariadb' && pendingFixes.includes('kills-mariadb'))
  )
    return fc.constant(undefined);
  return fc.oneof(
    { weight: 3, arbitrary: fc.constant(undefined) },
    {
      weight: 1,
      arbitrary: fc.record({ afterMs: fc.integer({ min: 0, max: 120 }), victim: fc.nat(3) }),
    },
  );
}

/** Programs for one engine. */
export function programArb(options: GenOptions): fc.Arbitrary<Program> {
  return fc
    .record({
      pool: fc.integer({ min: 1, max: 3 }),
      kit: fc.oneof(
        { weight: 4, arbitrary: fc.constant(false) },
        { weight: 1, arbitrary: fc.constant(true) },
      ),
    })
    .chain(({ pool, kit }) =>
      fc.record(
        {
          pool: fc.constant(pool),
          kit: fc.constant(kit),
          units: fc.array(unitArb(kit, options), { minLength: 1, maxLength: 4 }),
          // The kit's own connection is the test's transaction: killing it ends the test.
          kill: kill(kit, options),
          traced: fc.boolean(),
        },
        { requiredKeys: ['pool', 'kit', 'units', 'traced'] },
      ),
    )
    .map(normalize);
}

/**
 * A unit that fails its BEGIN must query first: its body then starts with an INSERT. Under the kit
 * every body starts with one: a REQUIRES_NEW block is a savepoint of the unit or block around it
 * only once that one has begun (sessions are lazy), so an INSERT first makes the nesting certain.
 */
function normalize(program: Program): Program {
  const first = (body: Step[]): Step[] => {
    const inner = body.map((step): Step => {
      if (step.t === 'nested' || step.t === 'requiresNew' || step.t === 'required')
        return { ...step, body: first(step.body) };
      if (step.t === 'nestedAll') return { ...step, blocks: step.blocks.map(first) };
      return step;
    });
    return inner[0]?.t === 'insert' ? inner : [{ t: 'insert' }, ...inner];
  };
  const normalized = {
    ...program,
    units: program.units.map((unit): Unit => {
      if (unit.kind === 'open') return unit;
      if (program.kit) return { ...unit, body: first(unit.body) };
      return unit.failBegin && unit.body[0]?.t !== 'insert'
        ? { ...unit, body: [{ t: 'insert' }, ...unit.body] }
        : unit;
    }),
  };
  const total = normalized.units.reduce((sum, unit) => sum + demand(unit), 0);
  if (!pendingFixes.includes('not-supported-unbounded') || total <= program.pool) return normalized;
  const plainless = (body: Step[]): Step[] =>
    body.map((step): Step => {
      if (step.t === 'notSupported') return { t: 'insert' };
      if (step.t === 'nested' || step.t === 'requiresNew' || step.t === 'required')
        return { ...step, body: plainless(step.body) };
      if (step.t === 'nestedAll') return { ...step, blocks: step.blocks.map(plainless) };
      return step;
    });
  return {
    ...normalized,
    units: normalized.units.map((unit) =>
      unit.kind === 'open' ? unit : { ...unit, body: plainless(unit.body) },
    ),
  };
}
