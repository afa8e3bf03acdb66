/** The clock and randomness the client uses, injectable so tests can drive time. */

export interface Timers {
  setTimeout(callback: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
  now(): number;
}

export const realTimers: Timers = {
  setTimeout: (callback, ms) => setTimeout(callback, ms),
  clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
  now: () => Date.now(),
};

/** Named one-shot timers: arming one cancels its previous run. */
export class Alarms<Name extends string> {
  private readonly handles = new Map<Name, unknown>();

  constructor(private readonly timers: Timers) {}

  arm(name: Name, ms: number, callback: () => void): void {
    this.cancel(name);
    this.handles.set(
      name,
      this.timers.setTimeout(() => {
        this.handles.delete(name);
        callback();
      }, ms),
    );
  }

  cancel(name: Name): void {
    if (this.handles.has(name)) this.timers.clearTimeout(this.handles.get(name));
    this.handles.delete(name);
  }

  cancelAll(): void {
    for (const name of [...this.handles.keys()]) this.cancel(name);
  }
}
