/** Generates the config reference (key, default, description) from the schema, for the README. */
import { readFileSync, writeFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { z } from 'zod';
import { configSchema } from './schema.js';

interface Row {
  key: string;
  defaultValue: string;
  description: string;
}

function unwrap(schema: z.ZodType): { inner: z.ZodType; defaultValue: unknown; description: string | undefined } {
  let inner = schema;
  let defaultValue: unknown = undefined;
  let description = schema.description;
  for (;;) {
    description ??= inner.description;
    if (inner instanceof z.ZodDefault || inner instanceof z.ZodPrefault) {
      if (defaultValue === undefined) defaultValue = inner.def.defaultValue;
      inner = inner.def.innerType as z.ZodType;
    } else if (inner instanceof z.ZodOptional || inner instanceof z.ZodNullable) {
      inner = inner.def.innerType as z.ZodType;
    } else break;
  }
  return { inner, defaultValue, description };
}

function walk(schema: z.ZodType, prefix: string, rows: Row[]): void {
  const { inner, defaultValue, description } = unwrap(schema);
  if (inner instanceof z.ZodObject && !(defaultValue !== undefined && Object.keys(defaultValue as object).length > 0)) {
    for (const [key, child] of Object.entries(inner.shape as Record<string, z.ZodType>)) walk(child, prefix ? `${prefix}.${key}` : key, rows);
    return;
  }
  // A list of sections (subscriptions, models): one row for the list, then one per key of its items.
  if (inner instanceof z.ZodArray && inner.def.element instanceof z.ZodObject) {
    rows.push({ key: prefix, defaultValue: JSON.stringify(defaultValue), description: description ?? '' });
    walk(inner.def.element as z.ZodType, `${prefix}[]`, rows);
    return;
  }
  rows.push({
    key: prefix,
    defaultValue: defaultValue === undefined ? '—' : JSON.stringify(defaultValue),
    description: description ?? '',
  });
}

export function configReference(): string {
  const rows: Row[] = [];
  walk(configSchema, '', rows);
  const escape = (s: string): string => s.replaceAll('|', '\\|');
  return [
    '| key | default | description |',
    '| --- | --- | --- |',
    ...rows.map((r) => `| \`${r.key}\` | \`${escape(r.defaultValue)}\` | ${escape(r.description)} |`),
  ].join('\n');
}

const START = '<!-- config-reference:start -->';
const END = '<!-- config-reference:end -->';

/** The README with its config reference section replaced by the generated table. */
export function withConfigReference(readme: string): string {
  const start = readme.indexOf(START);
  const end = readme.indexOf(END);
  if (start < 0 || end < start) throw new Error(`README has no ${START} … ${END} section`);
  return `${readme.slice(0, start + START.length)}\n${configReference()}\n${readme.slice(end)}`;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  writeFileSync('README.md', withConfigReference(readFileSync('README.md', 'utf8')));
  console.log('README.md config reference regenerated');
}
