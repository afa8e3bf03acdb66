/**
 * The client's connection states and the only moves between them. Every state
 * change goes through `move`, which refuses a move the table does not list: a
 * bug shows up as an error at its source, never as a client stuck in a state.
 */

export type State = "disconnected" | "connecting" | "connected" | "reconnecting";

const MOVES: Readonly<Record<State, readonly State[]>> = {
  // connect()
  disconnected: ["connecting"],
  // the first `connected`; disconnect() or a reason to stop
  connecting: ["connected", "disconnected"],
  // the connection ended and another is on its way; or it ended for good
  connected: ["reconnecting", "disconnected"],
  reconnecting: ["connected", "disconnected"],
};

export class StateMachine {
  private current: State = "disconnected";

  constructor(private readonly changed: (state: State, previous: State) => void) {}

  get state(): State {
    return this.current;
  }

  can(next: State): boolean {
    return MOVES[this.current].includes(next);
  }

  move(next: State): void {
    if (next === this.current) return;
    if (!this.can(next)) throw new Error(`roomcast: no move from ${this.current} to ${next}`);
    const previous = this.current;
    this.current = next;
    this.changed(next, previous);
  }
}
