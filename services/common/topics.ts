/**
 * Hierarchical topics, as in OPAL: topics are "/"-separated and a subscriber to "a"
 * receives "a" and everything below it ("a/b", "a/b/c"), but not "ab".
 */
export function topicCovers(subscribed: string, topic: string): boolean {
  if (subscribed === topic) return true;
  return topic.startsWith(subscribed.endsWith("/") ? subscribed : `${subscribed}/`);
}

/** True when any subscribed topic covers any of the given topics. */
export function anyTopicCovered(subscribed: readonly string[], topics: readonly string[]): boolean {
  for (const topic of topics) {
    for (const candidate of subscribed) {
      if (topicCovers(candidate, topic)) return true;
    }
  }
  return false;
}

/**
 * Collapses overlapping subscriptions to their parents ("a" and "a/b" become "a"),
 * as OPAL does for policy subscription dirs, and removes duplicates.
 */
export function collapseTopics(topics: readonly string[]): string[] {
  const unique = [...new Set(topics)].sort();
  return unique.filter((topic) => !unique.some((other) => other !== topic && topicCovers(other, topic)));
}
