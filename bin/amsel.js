#!/usr/bin/env node
// Amsel runs its TypeScript sources directly (no build step to forget): bin/ts-hooks.mjs
// transforms each .ts module with esbuild as it is loaded; stack traces point into the .ts files.
import { register } from 'node:module';
process.setSourceMapsEnabled(true);
register('./ts-hooks.mjs', import.meta.url);
const { main } = await import('../src/cli/amsel.ts');
await main(process.argv);
