#!/usr/bin/env node
/**
 * `npm run generate`: regenerates every generated module of the project.
 *
 *   node dist/src/varlink/codegen/cli.js [--check] [IN_DIR OUT_DIR]...
 *
 * Without directories it uses the project's three sets: the varlink library's built-in
 * interfaces, the certification interface, and berth's own interfaces. With --check it writes
 * nothing and exits 1 when a generated file would change.
 */
import { mkdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { generateDirectory, type GeneratedFile } from './generate.js';

export const PROJECT_SETS: [string, string][] = [
  ['src/varlink/builtin', 'src/varlink/builtin/generated'],
  ['src/varlink/certification', 'src/varlink/certification/generated'],
  ['interfaces', 'src/generated'],
];

export function generateProject(root: string, sets = PROJECT_SETS): GeneratedFile[] {
  const varlinkDir = resolve(root, 'src/varlink');
  return sets.flatMap(([i, o]) => generateDirectory(resolve(root, i), resolve(root, o), varlinkDir));
}

function main(argv: string[]): number {
  const check = argv.includes('--check');
  const dirs = argv.filter((a) => a !== '--check');
  const sets: [string, string][] = [];
  for (let i = 0; i + 1 < dirs.length; i += 2) sets.push([dirs[i]!, dirs[i + 1]!]);
  const files = generateProject(process.cwd(), sets.length ? sets : PROJECT_SETS);
  let stale = 0;
  for (const f of files) {
    const current = existsSync(f.path) ? readFileSync(f.path, 'utf8') : undefined;
    if (current === f.content) continue;
    stale++;
    if (check) {
      console.error(`out of date: ${f.path}`);
      continue;
    }
    mkdirSync(resolve(f.path, '..'), { recursive: true });
    writeFileSync(f.path, f.content);
    console.log(`wrote ${f.path}`);
  }
  if (check && stale) return 1;
  if (!check) console.log(`${files.length} files, ${stale} changed`);
  return 0;
}

if (import.meta.url === `file://${process.argv[1]}`) process.exit(main(process.argv.slice(2)));
