/** The commands of this engine, in the order help lists them. */
import type { Command } from "../registry.ts";
import { archive } from "./archive.ts";
import { forget } from "./forget.ts";
import { help } from "./help.ts";
import { ignore, unignore } from "./ignore.ts";
import { link } from "./link.ts";
import { list } from "./list.ts";
import { auto, reconnect } from "./reconnect.ts";
import { language, notify, stop } from "./settings.ts";
import { status } from "./status.ts";
import { unlink } from "./unlink.ts";

export const COMMANDS: readonly Command[] = [help, status, list, reconnect, auto, ignore, unignore, link, unlink, archive, notify, language, stop, forget];
