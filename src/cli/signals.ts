/**
 * One Ctrl-C can arrive twice within milliseconds: from the terminal (to the
 * whole foreground process group) and from a wrapper such as tsx relaying it.
 * A signal this soon after the first counts as the same one, not as the
 * second signal that forces an exit.
 */
export const DUPLICATE_SIGNAL_MS = 500;

/** Whether a signal now repeats the one that arrived (or the stop that began) at `firstAtMs`. */
export function isDuplicateSignal(firstAtMs: number): boolean {
  return Date.now() - firstAtMs < DUPLICATE_SIGNAL_MS;
}
