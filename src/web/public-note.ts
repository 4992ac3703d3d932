/**
 * A public post of the fediverse bot as a page, for a person whose server
 * links to it (`/fediverse/notes/<id>`); ActivityPub clients get the Note
 * itself at the same address (Fedify). Direct messages have no page.
 */
import type { Response } from "express";
import { htmlToText } from "../conversation/parse.ts";
import type { PublicNote } from "../store/fediverse-state.ts";
import { html, sendPage } from "./html.ts";

export function sendPublicNotePage(res: Response, note: PublicNote, lang: string): void {
  // The note's HTML is the bot's own, but the page shows it as text: what
  // reaches a browser from the database is never taken as markup.
  // No bot name: every mention in it is shown.
  const text = htmlToText(note.content, { username: "", domain: "" }).trim();
  const published = note.published.toISOString();
  sendPage(res, {
    lang,
    title: "Reconnexion",
    body: html`<h1><a href="/">Reconnexion</a></h1><p>${text}</p><p><time datetime="${published}">${published.slice(0, 16).replace("T", " ")} UTC</time></p>`,
  });
}
