/**
 * Runs berth's code generator on an interface definition at test time and loads the result, so
 * tests exercise exactly what `npm run generate` would produce (types, error classes,
 * precompiled standalone validators) without committing test-only generated files.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { generateDirectory, type GeneratedFile } from '../../src/varlink/codegen/generate.js';
import type { InterfaceDescriptor } from '../../src/varlink/interface.js';
import { parseInterface } from '../../src/varlink/idl/parser.js';
import { pascalName } from '../../src/varlink/codegen/typescript.js';
import { tempDir } from './tmp.js';

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const TEST_IDL_PATH = join(REPO, 'test/helpers/io.berth.test.varlink');

/** Generates the modules for one interface text into a fresh temp dir. */
export function generateInto(idl: string): { dir: string; files: GeneratedFile[]; remove(): void } {
  const tmp = tempDir('codegen');
  const input = join(tmp.path, 'in');
  const output = join(tmp.path, 'out');
  mkdirSync(input);
  mkdirSync(output);
  const name = parseInterface(idl).name;
  writeFileSync(join(input, `${name}.varlink`), idl);
  const files = generateDirectory(input, output, join(REPO, 'src/varlink'));
  for (const f of files) writeFileSync(f.path, f.content);
  return { dir: output, files, remove: tmp.remove };
}

export type LoadedInterface = InterfaceDescriptor<any> & { module: Record<string, any> };

/** Generates and imports an interface; the descriptor plus the whole module (error classes). */
export async function loadInterface(idl: string): Promise<LoadedInterface> {
  const name = parseInterface(idl).name;
  const gen = generateInto(idl);
  const mod = (await import(join(gen.dir, `${name}.ts`))) as Record<string, any>;
  const descriptor = mod[pascalName(name)] as InterfaceDescriptor<any>;
  return Object.assign(Object.create(null), descriptor, { module: mod }) as LoadedInterface;
}

/** io.berth.test, the interface the Varlink tests serve. */
export function loadTestInterface(): Promise<LoadedInterface> {
  return loadInterface(readFileSync(TEST_IDL_PATH, 'utf8'));
}
