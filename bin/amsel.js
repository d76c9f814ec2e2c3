#!/usr/bin/env node
// Amsel runs its TypeScript sources through tsx (no build step to forget).
import { register } from 'tsx/esm/api';
register();
const { main } = await import('../src/cli/amsel.ts');
await main(process.argv);
