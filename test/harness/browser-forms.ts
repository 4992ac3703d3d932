/**
 * What a browser does with the server-rendered forms of a reconnection:
 * read a form's action and hidden fields, and walk the Mastodon
 * authorization (our connect page → the instance's login-and-authorize form
 * → our callback) with plain HTTP.
 */

/** HTML entities in attribute values and text, as a browser decodes them. */
export function decodeHtml(s: string): string {
  return s
    .replace(/&#x([0-9a-f]+);/gi, (_, h: string) => String.fromCodePoint(parseInt(h, 16)))
    .replace(/&#(\d+);/g, (_, d: string) => String.fromCodePoint(Number(d)))
    .replace(/&quot;/g, '"')
    .replace(/&lt;/g, "<")
    .replace(/&gt;/g, ">")
    .replace(/&amp;/g, "&");
}

/** A page's form: its action and hidden fields, as a browser would send them back. */
export function formFields(html: string): { action: string; fields: Record<string, string> } {
  const action = html.match(/<form method="post" action="([^"]+)"/)?.[1];
  if (!action) throw new Error(`no form in: ${html.slice(0, 300)}`);
  const fields: Record<string, string> = {};
  for (const m of html.matchAll(/<input type="hidden" name="([^"]+)" value="([^"]*)">/g)) fields[m[1]!] = decodeHtml(m[2]!);
  return { action: decodeHtml(action), fields };
}

/**
 * Opens a reconnection link, presses its Mastodon button, signs in on the
 * instance's form as `login` and authorizes, then follows the redirect back
 * to the service's callback. Returns the callback's answer.
 */
export async function authorizeOnMastodon(link: string, login: { name: string; password: string }): Promise<{ status: number; text: string }> {
  const page = await fetch(link);
  if (page.status !== 200) throw new Error(`the link answered ${page.status}`);
  const start = await fetch(new URL(formFields(await page.text()).action, link), { method: "POST", redirect: "manual" });
  const authorizeUrl = new URL(start.headers.get("location") ?? "");
  const authorizePage = formFields(await (await fetch(authorizeUrl)).text());
  const answer = await fetch(new URL(authorizePage.action, authorizeUrl), {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({ ...authorizePage.fields, username: login.name, password: login.password, decision: "authorize" }),
    redirect: "manual",
  });
  const back = answer.headers.get("location");
  if (!back) throw new Error(`the instance answered ${answer.status} without sending the browser back`);
  const callback = await fetch(back);
  return { status: callback.status, text: await callback.text() };
}
