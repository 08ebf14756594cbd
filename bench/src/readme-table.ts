/**
 * Rewrites the performance table of the root README.md from results files, so that the table
 * is never typed by hand: `npm run bench:readme [-- bench/results/<file>.md ...] [-- --with-previous]`.
 * Without a file it takes the newest run (by its "Run started" time) under bench/results/ that
 * has a Node 24 and a Node 20 section with /read measured and is not a quick run (Node 22's is
 * shown when the run has one). Several files (runs of one set of endpoints at different pool
 * sizes, say) share one table per Node, each endpoint's column repeated per file and headed with
 * its pool size. The block
 * between `<!-- bench:start -->` and `<!-- bench:end -->` is replaced; nothing else is touched.
 */
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
// Compiled to bench/.tmp/js/bench/, like run.js.
const benchDir = path.resolve(here, '../../..');
const rootDir = path.resolve(benchDir, '..');
const resultsDir = path.join(benchDir, 'results');
const START = '<!-- bench:start -->';
const END = '<!-- bench:end -->';
/** The Node sections of the README table, in this order (those required, and Node 22 when run). */
const NODES = ['Node 24', 'Node 22', 'Node 20'];
const REQUIRED = ['Node 24', 'Node 20'];
const FLOOR = 'context-floor';

/** One Node section of a results file: per variant label, per endpoint, req/s and CPU µs/req. */
interface Section {
  node: string;
  version: string;
  endpoints: string[];
  rps: Map<string, number[]>;
  cpu: Map<string, number[]>;
}

interface Results {
  file: string;
  started: string;
  pool: string;
  connections: string;
  commit: string;
  quick: boolean;
  sections: Section[];
}

/** The rows of the first markdown table after `heading`: header cells and body rows. */
function table(text: string, heading: RegExp): { header: string[]; rows: string[][] } | undefined {
  const at = text.search(heading);
  if (at < 0) return undefined;
  const lines = text.slice(at).split('\n');
  const first = lines.findIndex((line) => line.startsWith('|'));
  if (first < 0) return undefined;
  const body: string[][] = [];
  for (const line of lines.slice(first)) {
    if (!line.startsWith('|')) break;
    body.push(
      line
        .slice(1, line.endsWith('|') ? -1 : undefined)
        .split('|')
        .map((cell) => cell.trim()),
    );
  }
  const [header, , ...rows] = body;
  return { header, rows };
}

/** The leading number of a cell such as `1234 (0.99x / 0.98x)`; NaN for `–` or `did not run`. */
const leading = (cell: string) => Number(/^[\d.]+/.exec(cell)?.[0] ?? NaN);

function parseSection(text: string, node: string, version: string): Section | undefined {
  const rps = table(text, /^### Requests\/s/m);
  const cpu = table(text, /^### Server CPU per request/m);
  if (!rps || !cpu) return undefined;
  const endpoints = rps.header.slice(1).map((h) => h.replace(/^(GET|POST) /, ''));
  const byLabel = (rows: string[][]) =>
    new Map(rows.map(([label, ...cells]) => [label, cells.map(leading)] as const));
  return { node, version, endpoints, rps: byLabel(rps.rows), cpu: byLabel(cpu.rows) };
}

function parse(file: string): Results {
  const text = readFileSync(file, 'utf8');
  const sections: Section[] = [];
  const heads = [...text.matchAll(/^## (Node \d+) \(([^)]*)\)$/gm)];
  heads.forEach((head, i) => {
    const body = text.slice(head.index, heads[i + 1]?.index ?? text.length);
    const section = parseSection(body, head[1], head[2]);
    if (section) sections.push(section);
  });
  return {
    file,
    started: /^Run started (\S+?),/m.exec(text)?.[1] ?? '',
    pool: /pool size (\d+)/.exec(text)?.[1] ?? '?',
    connections: /with (\d+) connections/.exec(text)?.[1] ?? '?',
    commit: /built from commit ([^)`]+)\)/.exec(text)?.[1] ?? 'unknown',
    quick: /Quick mode/.test(text),
    sections,
  };
}

/** Usable for the README: Node 24 and Node 20 measured, /read among the endpoints, not quick. */
function usable(results: Results): boolean {
  return (
    !results.quick &&
    REQUIRED.every((node) =>
      results.sections.some((s) => s.node === node && s.endpoints.includes('/read')),
    )
  );
}

function newest(): Results {
  const candidates = readdirSync(resultsDir)
    .filter((name) => name.endsWith('.md'))
    .map((name) => parse(path.join(resultsDir, name)))
    .filter(usable)
    .sort((a, b) => b.started.localeCompare(a.started));
  if (!candidates.length)
    throw new Error(`no results file in ${resultsDir} with Node 24 and Node 20 sections`);
  return candidates[0];
}

/** README names of the results files' variant labels (older files label this library bare). */
function readmeName(label: string): string {
  const plain = label.replace(/\*\*/g, '');
  if (plain.startsWith('context-floor')) return FLOOR;
  if (plain === 'nestjs-typeorm-context' || plain.includes('(session())'))
    return '**nestjs-typeorm-context**, `session()`';
  if (plain.includes('plainTypeorm'))
    return "**nestjs-typeorm-context**, plain TypeORM, `plainTypeorm: 'join'`";
  if (plain.includes('forFeature')) return '**nestjs-typeorm-context**, `@InjectRepository`';
  if (plain.includes('@InjectSession')) return '**nestjs-typeorm-context**, `@InjectSession`';
  if (plain.startsWith('@nestjs-cls/transactional')) return '@nestjs-cls/transactional';
  if (plain.startsWith('Scope.REQUEST')) return '`Scope.REQUEST` QueryRunner';
  return plain;
}

const signed = (value: number) =>
  Number.isFinite(value) ? `${value >= 0 ? '+' : '−'}${Math.abs(value).toFixed(0)}` : '–';

/** One Node's sections, one per results file, side by side: endpoint columns per file. */
function nodeTable(
  node: string,
  parts: Array<{ section: Section; pool: string }>,
  withPrevious: boolean,
): string[] {
  const many = parts.length > 1;
  const columns = parts[0].section.endpoints.flatMap((endpoint) =>
    parts.map((part) => ({ endpoint, part })),
  );
  const head = ({ endpoint, part }: (typeof columns)[number]) =>
    many ? `${endpoint}, pool ${part.pool}` : endpoint;
  const floorOf = (section: Section) => {
    const label = [...section.rps.keys()].find((key) => key.startsWith(FLOOR));
    if (!label) throw new Error(`${section.node}: no ${FLOOR} row to compare with`);
    return label;
  };
  const cell = (
    { endpoint, part }: (typeof columns)[number],
    show: (rps: number, cpu: number, floorRps: number, floorCpu: number) => string,
    label?: string,
  ) => {
    const { section } = part;
    const floor = floorOf(section);
    const at = section.endpoints.indexOf(endpoint);
    const rps = section.rps.get(label ?? floor)?.[at];
    const cpu = section.cpu.get(label ?? floor)?.[at];
    const floorRps = section.rps.get(floor)![at];
    const floorCpu = section.cpu.get(floor)![at];
    if (at < 0 || rps === undefined || cpu === undefined || !Number.isFinite(rps / floorRps))
      return '–';
    return show(rps, cpu, floorRps, floorCpu);
  };
  const lines = [
    `| ${node} (${parts[0].section.version}) | ${columns.map(head).join(' | ')} |`,
    `|---|${columns.map(() => '---:').join('|')}|`,
    `| ${FLOOR}: req/s (CPU µs/req) | ${columns
      .map((column) => cell(column, (_, __, rps, cpu) => `${rps.toFixed(0)} (${cpu.toFixed(0)})`))
      .join(' | ')} |`,
  ];
  const labels = [...new Set(parts.flatMap(({ section }) => [...section.rps.keys()]))];
  for (const label of labels) {
    if (label.startsWith(FLOOR) || label.startsWith('baseline')) continue;
    if (!withPrevious && label.includes('previous build')) continue;
    const cells = columns.map((column) =>
      cell(
        column,
        (rps, cpu, floorRps, floorCpu) =>
          `${(rps / floorRps).toFixed(2)}x (${signed(cpu - floorCpu)})`,
        label,
      ),
    );
    if (cells.every((text) => text === '–')) continue; // did not run
    lines.push(`| ${readmeName(label)} | ${cells.join(' | ')} |`);
  }
  return lines;
}

/** A results file's path from the repository root, with forward slashes (as the README links it). */
const relativeOf = (results: Results) =>
  path.relative(rootDir, results.file).split(path.sep).join('/');

const link = (results: Results) => {
  const relative = relativeOf(results);
  return (
    `[${relative}](${relative}) (pool ${results.pool}, \`dist/\` of commit ${results.commit}, ` +
    `run ${results.started.slice(0, 10)})`
  );
};

function block(files: Results[], withPrevious: boolean): string {
  const relatives = files.map(relativeOf);
  const lines = [
    START,
    `<!-- generated by \`npm run bench:readme\` from ${relatives.join(', ')}; do not edit by hand -->`,
    '',
    'Requests/s as a ratio to `context-floor`, and in parentheses server CPU µs per request over ' +
      "`context-floor`'s (first row: its absolute figures), medians over rounds" +
      (files.length > 1
        ? `, ${files[0].connections} connections; each endpoint at pool ${files.map((f) => f.pool).join(' and ')}:`
        : ':'),
    '',
  ];
  for (const node of NODES) {
    const parts = files.flatMap((results) => {
      const section = results.sections.find((s) => s.node === node);
      return section ? [{ section, pool: results.pool }] : [];
    });
    if (parts.length) lines.push(...nodeTable(node, parts, withPrevious), '');
  }
  lines.push(`From ${files.map(link).join(' and ')}.`, END);
  return lines.join('\n');
}

function main(): void {
  const args = process.argv.slice(2);
  const withPrevious = args.includes('--with-previous');
  const fileArgs = args.filter((arg) => !arg.startsWith('--'));
  const base = process.env.INIT_CWD ?? process.cwd();
  const files = fileArgs.length
    ? fileArgs.map((file) => parse(path.resolve(base, file)))
    : [newest()];
  for (const results of files)
    if (!usable(results))
      throw new Error(`${results.file}: needs Node 24 and Node 20 sections with /read, not quick`);
  const readmePath = path.join(rootDir, 'README.md');
  const readme = readFileSync(readmePath, 'utf8');
  const start = readme.indexOf(START);
  const end = readme.indexOf(END);
  if (start < 0 || end < start) throw new Error(`README.md has no ${START} … ${END} block`);
  const updated =
    readme.slice(0, start) + block(files, withPrevious) + readme.slice(end + END.length);
  writeFileSync(readmePath, updated);
  console.log(`README.md: performance table from ${files.map(relativeOf).join(', ')}`);
}

main();
