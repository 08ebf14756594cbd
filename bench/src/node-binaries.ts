/**
 * The Node versions a bench runs on: the machine's own `node`, and Node 24 and Node 22 from the
 * bench's npm packages (`node` and its alias `node22`), so every run measures the versions people
 * run whatever the machine has. `BENCH_NODES=24,20` keeps only those majors.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';

/** One Node binary and how tables name it. */
export interface NodeBinary {
  label: string;
  path: string;
  version: string;
}

/** The packages of bench/package.json that bring a Node binary, by the major they pin. */
const PACKAGED: Array<{ major: string; dir: string }> = [
  { major: '24', dir: 'node' },
  { major: '22', dir: 'node22' },
];

/** The machine's Node first, then the packaged ones found; `missing` says which were not. */
export function nodeBinaries(benchDir: string): { nodes: NodeBinary[]; missing: string[] } {
  const wanted = process.env.BENCH_NODES?.split(',').map((major) => major.trim());
  const keep = (major: string) => !wanted || wanted.includes(major);
  const own = binary(process.execPath, process.version);
  const nodes: NodeBinary[] = [];
  const missing: string[] = [];
  if (keep(own.label.slice('Node '.length))) nodes.push(own);
  for (const { major, dir } of PACKAGED) {
    if (!keep(major) || nodes.some((node) => node.label === `Node ${major}`)) continue;
    const file = path.join(benchDir, 'node_modules', dir, 'bin', 'node');
    if (existsSync(file)) {
      nodes.push(binary(file, execFileSync(file, ['--version']).toString().trim()));
    } else {
      missing.push(`Node ${major}: ${file} not found (run \`npm ci --prefix bench\`)`);
    }
  }
  return { nodes, missing };
}

function binary(file: string, version: string): NodeBinary {
  return { label: `Node ${version.slice(1).split('.')[0]}`, path: file, version };
}
