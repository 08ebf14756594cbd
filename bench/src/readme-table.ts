/**
 * Rewrites the performance table of the root README.md from a results file, so that the table
 * is never typed by hand: `npm run bench:readme [-- bench/results/<file>.md] [-- --with-previous]`.
 * Without a file it takes the newest run (by its "Run started" time) under bench/results/ that
 * has a Node 24 and a Node 20 section with /read measured and is not a quick run (Node 22's is
 * shown when the run has one). The block
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

function sectionTable(section: Section, withPrevious: boolean): string[] {
  const floorLabel = [...section.rps.keys()].find((label) => label.startsWith(FLOOR));
  if (!floorLabel) throw new Error(`${section.node}: no ${FLOOR} row to compare with`);
  const floorRps = section.rps.get(floorLabel)!;
  const floorCpu = section.cpu.get(floorLabel)!;
  const lines = [
    `| ${section.node} (${section.version}) | ${section.endpoints.join(' | ')} |`,
    `|---|${section.endpoints.map(() => '---:').join('|')}|`,
    `| ${FLOOR}: req/s (CPU µs/req) | ${section.endpoints
      .map((_, i) => `${floorRps[i].toFixed(0)} (${floorCpu[i].toFixed(0)})`)
      .join(' | ')} |`,
  ];
  for (const [label, rps] of section.rps) {
    if (label === floorLabel || label.startsWith('baseline')) continue;
    if (!withPrevious && label.includes('previous build')) continue;
    const cpu = section.cpu.get(label);
    if (!cpu) continue; // did not run
    const cells = section.endpoints.map((_, i) => {
      const ratio = rps[i] / floorRps[i];
      if (!Number.isFinite(ratio)) return '–';
      return `${ratio.toFixed(2)}x (${signed(cpu[i] - floorCpu[i])})`;
    });
    lines.push(`| ${readmeName(label)} | ${cells.join(' | ')} |`);
  }
  return lines;
}

function block(results: Results, withPrevious: boolean): string {
  const relative = path.relative(rootDir, results.file).split(path.sep).join('/');
  const lines = [
    START,
    `<!-- generated by \`npm run bench:readme\` from ${relative}; do not edit by hand -->`,
    '',
    'Requests/s as a ratio to `context-floor`, and in parentheses server CPU µs per request over ' +
      "`context-floor`'s (first row: its absolute figures), medians over rounds:",
    '',
  ];
  for (const node of NODES) {
    const section = results.sections.find((s) => s.node === node);
    if (section) lines.push(...sectionTable(section, withPrevious), '');
  }
  lines.push(
    `From [${relative}](${relative}) (\`dist/\` of commit ${results.commit}, run ` +
      `${results.started.slice(0, 10)}).`,
    END,
  );
  return lines.join('\n');
}

function main(): void {
  const args = process.argv.slice(2);
  const withPrevious = args.includes('--with-previous');
  const fileArg = args.find((arg) => !arg.startsWith('--'));
  const base = process.env.INIT_CWD ?? process.cwd();
  const results = fileArg ? parse(path.resolve(base, fileArg)) : newest();
  if (!usable(results))
    throw new Error(`${results.file}: needs Node 24 and Node 20 sections with /read, not quick`);
  const readmePath = path.join(rootDir, 'README.md');
  const readme = readFileSync(readmePath, 'utf8');
  const start = readme.indexOf(START);
  const end = readme.indexOf(END);
  if (start < 0 || end < start) throw new Error(`README.md has no ${START} … ${END} block`);
  const updated =
    readme.slice(0, start) + block(results, withPrevious) + readme.slice(end + END.length);
  writeFileSync(readmePath, updated);
  console.log(`README.md: performance table from ${path.relative(rootDir, results.file)}`);
}

main();
