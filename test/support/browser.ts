/** Headless-browser helpers for the status page tests (Debian's chromium through playwright-core). */
import { existsSync } from 'node:fs';
import type { Page } from 'playwright-core';

export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
export const haveChromium = existsSync(CHROMIUM);

/** The page's DOM, as the function run in the browser sees it (this project compiles without the DOM lib). */
export type PageGlobal = { document: { getElementById(id: string): { textContent: string | null } | null } };

/** Resolves once the element `id` shows `text` (checked every frame). */
export function shows(page: Page, id: string, text: string, timeout = 5_000): Promise<unknown> {
  return page.waitForFunction(
    ([el, want]) => ((globalThis as unknown as PageGlobal).document.getElementById(el as string)?.textContent ?? '').includes(want as string),
    [id, text],
    { polling: 'raf', timeout },
  );
}
