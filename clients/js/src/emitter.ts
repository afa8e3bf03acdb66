/** A typed event emitter: `on` returns the function that removes the handler. */

export type Handler<T> = (value: T) => void;

export class Emitter<Events> {
  private readonly handlers = new Map<keyof Events, Set<Handler<never>>>();

  on<K extends keyof Events>(event: K, handler: Handler<Events[K]>): () => void {
    let set = this.handlers.get(event);
    if (!set) this.handlers.set(event, (set = new Set()));
    set.add(handler);
    return () => {
      set.delete(handler);
    };
  }

  /** Calls every handler; one that throws is reported to `onError`, not to the caller. */
  emit<K extends keyof Events>(event: K, value: Events[K], onError: (e: unknown) => void): void {
    const set = this.handlers.get(event);
    if (!set) return;
    for (const handler of [...set]) {
      try {
        (handler as Handler<Events[K]>)(value);
      } catch (error) {
        onError(error);
      }
    }
  }
}
