// Generates src/api/schema.d.ts from the server's OpenAPI document, the one source of the
// console's API types. `--check` regenerates into a temp file and fails if the committed
// file differs, so a server change that is not carried into the console is caught.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const spec = resolve(root, '../server/src/api/openapi.json');
const target = resolve(root, 'src/api/schema.d.ts');
const cli = resolve(root, 'node_modules/openapi-typescript/bin/cli.js');
const check = process.argv.includes('--check');

function generate(out) {
  execFileSync(process.execPath, [cli, spec, '--output', out], { stdio: ['ignore', 'ignore', 'inherit'] });
}

if (!check) {
  generate(target);
  console.log(`wrote ${target}`);
} else {
  const dir = mkdtempSync(join(tmpdir(), 'weir-types-'));
  try {
    const fresh = join(dir, 'schema.d.ts');
    generate(fresh);
    const committed = existsSync(target) ? readFileSync(target, 'utf8') : '';
    const expected = readFileSync(fresh, 'utf8');
    if (committed !== expected) {
      const a = committed.split('\n');
      const b = expected.split('\n');
      let line = 0;
      while (line < a.length && a[line] === b[line]) line++;
      console.error(
        `console/src/api/schema.d.ts is stale: it does not match ${spec}.\n` +
          `First difference at line ${line + 1}:\n  committed: ${a[line]?.trim() ?? '(end of file)'}\n  expected:  ${b[line]?.trim() ?? '(end of file)'}\n` +
          'Run `npm run gen-types` in console/ and commit the result.',
      );
      process.exit(1);
    }
    console.log('src/api/schema.d.ts matches the server OpenAPI document');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
