// Small DOM helpers: every text goes in as text, never as HTML.

export function byId<T extends HTMLElement = HTMLElement>(id: string): T {
  const found = document.getElementById(id);
  if (found === null) throw new Error(`#${id} is missing from the page`);
  return found as T;
}

export function value(id: string): string {
  return byId<HTMLInputElement>(id).value.trim();
}

export function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  text?: string,
  className?: string,
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = text;
  if (className !== undefined) node.className = className;
  return node;
}

export function row(cells: (string | Node)[]): HTMLTableRowElement {
  const tr = el("tr");
  for (const cell of cells) {
    const td = el("td");
    if (typeof cell === "string") td.textContent = cell;
    else td.append(cell);
    tr.append(td);
  }
  return tr;
}

export function say(id: string, text: string, failed = false): void {
  const node = byId(id);
  node.textContent = text;
  node.classList.toggle("failed", failed);
}

export function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

export function query(params: Record<string, string>): string {
  const search = new URLSearchParams();
  for (const [name, text] of Object.entries(params)) if (text) search.set(name, text);
  const encoded = search.toString();
  return encoded ? `?${encoded}` : "";
}

export function time(ms: number): string {
  return new Date(ms).toLocaleTimeString();
}
