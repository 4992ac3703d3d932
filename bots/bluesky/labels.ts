/** Whether an account declares itself automated: the `bot` label (self-label or labeller), not negated. */
export function isBotLabelled(labels: ReadonlyArray<{ val: string; neg?: boolean }> | undefined): boolean {
  return (labels ?? []).some((l) => l.val === "bot" && !l.neg);
}
