/**
 * A vitest reporter that ends the run with every skipped test and the reason it was skipped (the note
 * given to ctx.skip, or the reason a describe.skipIf title carries), so that the tail of a CI log says
 * what did not run and why.
 */
import type { Reporter, TestModule } from 'vitest/node';

export default class SkipReporter implements Reporter {
  onTestRunEnd(modules: ReadonlyArray<TestModule>): void {
    const lines: string[] = [];
    for (const m of modules) {
      for (const t of m.children.allTests()) {
        const r = t.result();
        if (r.state !== 'skipped') continue;
        lines.push(`  ${m.moduleId.replace(`${process.cwd()}/`, '')} > ${t.fullName}${r.note ? ` (${r.note})` : ''}`);
      }
    }
    if (lines.length === 0) {
      process.stdout.write('\nNo test was skipped.\n');
      return;
    }
    process.stdout.write(`\n${lines.length} skipped test(s); each file printed its reason with console.warn above:\n${lines.join('\n')}\n`);
  }
}
