/**
 * The position vector a client keeps: per partition, the offset of the last message
 * it has seen. A reconnect sends it as `since`, so the edge replays exactly the gap.
 */

export class PositionVector {
  private readonly offsets = new Map<number, number>();

  /** Take `text` ("0:41,1:-1") entry by entry, keeping the higher offset of each. */
  merge(text: string): void {
    for (const part of text.split(",")) {
      const entry = parsePosition(part);
      if (entry) this.advance(entry[0], entry[1]);
    }
  }

  /** A push's `meta.position` ("2:17"); an unreadable one changes nothing. */
  see(position: string | undefined): void {
    const entry = position === undefined ? null : parsePosition(position);
    if (entry) this.advance(entry[0], entry[1]);
  }

  get empty(): boolean {
    return this.offsets.size === 0;
  }

  clear(): void {
    this.offsets.clear();
  }

  toString(): string {
    return [...this.offsets]
      .sort((a, b) => a[0] - b[0])
      .map(([p, o]) => `${p}:${o}`)
      .join(",");
  }

  private advance(partition: number, offset: number): void {
    if (offset > (this.offsets.get(partition) ?? -2)) this.offsets.set(partition, offset);
  }
}

function parsePosition(text: string): [number, number] | null {
  const match = /^\s*(\d+):(-1|\d+)\s*$/.exec(text);
  if (!match) return null;
  return [Number(match[1]), Number(match[2])];
}
