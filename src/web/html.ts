/**
 * The small server-rendered pages: one layout, text escaped everywhere, no
 * script, headers that keep one-time tokens out of caches and referrers.
 */
import type { Response } from "express";

const ESCAPES: Record<string, string> = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };

/** Escapes text for HTML content and attribute values. */
export function escapeHtml(value: string): string {
  return value.replace(/[&<>"']/g, (c) => ESCAPES[c]!);
}

/** Marks a string as already-safe HTML. */
export class SafeHtml {
  readonly html: string;
  constructor(html: string) {
    this.html = html;
  }
}

/** A template tag that escapes every interpolated value unless it is `SafeHtml` (or an array of them). */
export function html(strings: TemplateStringsArray, ...values: unknown[]): SafeHtml {
  let out = strings[0]!;
  values.forEach((value, i) => {
    const items = Array.isArray(value) ? value : [value];
    for (const item of items) out += item instanceof SafeHtml ? item.html : escapeHtml(String(item ?? ""));
    out += strings[i + 1]!;
  });
  return new SafeHtml(out);
}

/** Inline `code` spans in a translated sentence, the rest escaped. */
export function prose(text: string): SafeHtml {
  return new SafeHtml(
    text
      .split("`")
      .map((part, i) => (i % 2 === 1 ? `<code>${escapeHtml(part)}</code>` : escapeHtml(part)))
      .join(""),
  );
}

const STYLE = `body{font:16px/1.5 system-ui,sans-serif;max-width:34rem;margin:2rem auto;padding:0 1rem;color:#1b1b1f}
h1{font-size:1.4rem}form{margin:1.2rem 0}button{font:inherit;padding:.5rem 1rem;cursor:pointer}
input{font:inherit;padding:.4rem;width:100%;box-sizing:border-box}label{display:block;margin:.5rem 0 .2rem}
.error{color:#a00}.muted{color:#555;font-size:.9rem}`;

/** Headers every page here needs: one-time tokens stay out of caches and referrers. */
export const PAGE_HEADERS = {
  "Cache-Control": "no-store",
  "Referrer-Policy": "no-referrer",
  "X-Frame-Options": "DENY",
  "X-Content-Type-Options": "nosniff",
  "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; frame-ancestors 'none'",
} as const;

/** A whole page as a string. */
export function renderPage(options: { lang: string; title: string; body: SafeHtml }): string {
  return (
    `<!doctype html><html lang="${escapeHtml(options.lang)}"><head><meta charset="utf-8">` +
    `<meta name="viewport" content="width=device-width,initial-scale=1"><meta name="robots" content="noindex">` +
    `<title>${escapeHtml(options.title)}</title><style>${STYLE}</style></head><body>${options.body.html}</body></html>`
  );
}

/** Sends a whole page with the headers every page here needs. */
export function sendPage(res: Response, options: { lang: string; title: string; body: SafeHtml; status?: number }): void {
  res
    .status(options.status ?? 200)
    .set({ "Content-Type": "text/html; charset=utf-8", ...PAGE_HEADERS })
    .send(renderPage(options));
}
