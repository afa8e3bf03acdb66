/** Types of demo.mjs for the tests that import it. */
export const DEMO_DIR: string;
export function demoFiles(): Promise<Record<"client.js" | "demo.js", string>>;
export function buildDemo(): Promise<void>;
