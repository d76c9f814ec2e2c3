// Module hooks that run Amsel's TypeScript sources directly (node:module register()).
// Each .ts file is transformed by esbuild (type stripping, no type check: `npm run typecheck`
// does that) with the project's tsconfig. Unlike tsx we do not ask esbuild to keep function
// names: its keepNames wrapper redefines `name` on every function and closure created, which
// costs memory per connection (closures with own properties) and CPU on hot paths.
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { transform } from 'esbuild';

const tsconfig = JSON.parse(await readFile(new URL('../tsconfig.json', import.meta.url), 'utf8'));
const tsconfigRaw = { compilerOptions: tsconfig.compilerOptions };

export async function load(url, context, nextLoad) {
  if (!url.startsWith('file:') || !url.endsWith('.ts')) return nextLoad(url, context);
  const file = fileURLToPath(url);
  const source = await readFile(file, 'utf8');
  const out = await transform(source, { loader: 'ts', format: 'esm', target: 'node20', sourcemap: 'inline', sourcefile: file, tsconfigRaw });
  return { format: 'module', source: out.code, shortCircuit: true };
}
