/**
 * Full-jitter backoff: each wait is drawn uniformly between 0.5 s and a ceiling that
 * doubles from 1 s up to 20 s, so a crowd of clients never reconnects in step.
 */

export const BACKOFF_MIN_MS = 500;
export const BACKOFF_MAX_MS = 20_000;

/** Milliseconds to wait before retry number `attempt` (0 for the first). */
export function backoffDelay(attempt: number, random: () => number = Math.random): number {
  const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** (Math.min(attempt, 10) + 1));
  return BACKOFF_MIN_MS + random() * (ceiling - BACKOFF_MIN_MS);
}

/** When to refresh a token that expires in `expiresInS` seconds: 70-85 % of the way. */
export function refreshDelay(expiresInS: number, random: () => number = Math.random): number {
  return Math.max(0, expiresInS) * 1000 * (0.7 + random() * 0.15);
}
