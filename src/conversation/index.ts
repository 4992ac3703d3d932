/**
 * The platform-agnostic conversation: what the bots and the terminal chat use.
 * A bot builds an `Incoming`, calls `engine.handle()`, delivers the replies.
 */
export { ConversationEngine } from "./engine.ts";
export { DEFAULT_LIMITS, botNamesFrom, type EngineContext, type Limits } from "./context.ts";
export type { Channel, Effect, Incoming, Outcome, Reply, Sender, Visibility } from "./incoming.ts";
export { REPLY_LIMITS } from "./privacy.ts";
export { ChatUsageError, runChat } from "./chat-terminal.ts";
export { LOCALES } from "./i18n/index.ts";
