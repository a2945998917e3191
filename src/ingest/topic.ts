/** Compiled subscriptions: match a concrete topic against a subscription filter and derive the stream id and channel. */
import type { PayloadFormat, SubscriptionConfig } from '../config/schema.js';

export interface Subscription {
  readonly filter: string;
  readonly format: PayloadFormat;
  readonly qos: 0 | 1;
  /** Index of this subscription in the config, for per-subscription metrics. */
  readonly index: number;
  match(topic: string): TopicMatch | null;
}

/** A match is reused by the subscription's next call: read it before matching again. */
export interface TopicMatch {
  readonly streamId: string;
  /** Channel name from the subscription (literal or template); null when the payload or model decides. */
  readonly channel: string | null;
}

type TemplatePart = string | number;

function compileTemplate(template: string): TemplatePart[] {
  const parts: TemplatePart[] = [];
  const re = /\{(\d+)\}/g;
  let last = 0;
  for (let m = re.exec(template); m; m = re.exec(template)) {
    if (m.index > last) parts.push(template.slice(last, m.index));
    parts.push(Number(m[1]) - 1);
    last = m.index + m[0].length;
  }
  if (last < template.length) parts.push(template.slice(last));
  return parts;
}

function render(parts: TemplatePart[], wildcards: string[]): string {
  let out = '';
  for (const part of parts) out += typeof part === 'number' ? (wildcards[part] ?? '') : part;
  return out;
}

/** Throws with the subscription's field path when a template refers to a wildcard the filter lacks. */
export function compileSubscription(sub: SubscriptionConfig, index: number): Subscription {
  const levels = sub.topic.split('/');
  const wildcardCount = levels.filter((l) => l === '+' || l === '#').length;
  const hashAt = levels.indexOf('#');
  if (hashAt !== -1 && hashAt !== levels.length - 1) {
    throw new Error(`subscriptions.${index}.topic: "#" must be the last level — fix: e.g. "sensors/#"`);
  }
  const streamParts = compileTemplate(sub.stream ?? levels.map((_, i) => i).filter((i) => levels[i] === '+' || levels[i] === '#').map((_, n) => `{${n + 1}}`).join('/'));
  const channelParts = sub.channel === undefined ? null : compileTemplate(sub.channel);
  for (const [key, parts] of [['stream', streamParts], ['channel', channelParts ?? []]] as const) {
    for (const part of parts) {
      if (typeof part === 'number' && (part < 0 || part >= wildcardCount)) {
        throw new Error(
          `subscriptions.${index}.${key}: {${part + 1}} refers to wildcard ${part + 1} but "${sub.topic}" has ${wildcardCount} — fix: use {1}..{${wildcardCount}}`,
        );
      }
    }
  }
  const hasStreamText = streamParts.length > 0;
  // The default template, one wildcard as the whole stream id, needs no string building.
  const streamWildcard = streamParts.length === 1 && typeof streamParts[0] === 'number' ? streamParts[0] : -1;
  // Wildcards on adjacent "+" levels joined by "/" in order ("plant/+/+/x", stream "{1}/{2}") are one
  // stretch of the topic: the stream id is a single slice, with no wildcard strings and no concatenation.
  const span = contiguousSpan(levels, streamParts);
  const needWildcards = channelParts !== null || (span === null && streamWildcard < 0 && hasStreamText);
  const wildcards: string[] = [];
  const last = levels.length - 1;
  const result = { streamId: '', channel: null as string | null };
  // Literal levels before the first "+" are checked as one prefix ("plant/line-1/"), not level by level.
  const leading = levels.findIndex((l) => l === '+' || l === '#');
  const prefix = leading > 0 && levels[leading] === '+' ? `${levels.slice(0, leading).join('/')}/` : null;
  const first = prefix === null ? 0 : leading;
  return {
    filter: sub.topic,
    format: sub.format,
    qos: sub.qos,
    index,
    match(topic: string): TopicMatch | null {
      // Walks the topic level by level with indexOf: no split, no array per message.
      wildcards.length = 0;
      let wildcard = 0;
      let streamId: string | null = null;
      let spanStart = 0;
      let start = 0;
      if (prefix !== null) {
        if (!topic.startsWith(prefix)) return null;
        start = prefix.length;
      }
      for (let i = first; i <= last; i++) {
        const level = levels[i] as string;
        if (level === '#') {
          if (i === 0 && topic.charCodeAt(0) === 36) return null; // "$" topics are not matched by wildcards
          const rest = start <= topic.length ? topic.slice(start) : '';
          if (wildcard === streamWildcard) streamId = rest;
          if (needWildcards) wildcards.push(rest);
          break;
        }
        if (start > topic.length) return null;
        const slash = topic.indexOf('/', start);
        const end = slash === -1 ? topic.length : slash;
        if (level === '+') {
          if (i === 0 && topic.charCodeAt(0) === 36) return null;
          if (span !== null) {
            if (i === span.first) spanStart = start;
            if (i === span.last) streamId = topic.slice(spanStart, end);
          } else if (wildcard === streamWildcard) streamId = topic.slice(start, end);
          if (needWildcards) wildcards.push(topic.slice(start, end));
          wildcard++;
        } else if (end - start !== level.length || !topic.startsWith(level, start)) return null;
        if (i === last) {
          if (slash !== -1) return null;
        } else if (slash === -1) {
          // Only "a/#" may match "a" (the parent level itself).
          if (!(i === last - 1 && levels[last] === '#')) return null;
          if (wildcard === streamWildcard) streamId = '';
          if (needWildcards) wildcards.push('');
          break;
        }
        start = end + 1;
      }
      if (streamId === null) streamId = hasStreamText ? render(streamParts, wildcards) : topic;
      if (streamId.length === 0) return null;
      result.streamId = streamId;
      result.channel = channelParts ? render(channelParts, wildcards) : null;
      return result;
    },
  };
}

/** The filter levels a stream template spans when it is adjacent "+" wildcards joined by "/", in order. */
function contiguousSpan(levels: readonly string[], parts: readonly TemplatePart[]): { first: number; last: number } | null {
  if (parts.length < 3 || parts.length % 2 === 0) return null;
  const wildcardLevels = levels.flatMap((level, i) => (level === '+' || level === '#' ? [i] : []));
  let first = -1;
  let previous = -1;
  for (let k = 0; k < parts.length; k++) {
    const part = parts[k];
    if (k % 2 === 1) {
      if (part !== '/') return null;
      continue;
    }
    if (typeof part !== 'number') return null;
    const level = wildcardLevels[part];
    if (level === undefined || levels[level] !== '+' || (previous >= 0 && level !== previous + 1)) return null;
    if (first < 0) first = level;
    previous = level;
  }
  return { first, last: previous };
}
