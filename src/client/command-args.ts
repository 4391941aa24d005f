// How commands read what follows their name: the first word and the rest, room names typed with
// or without their "#", and the optional leading room of room commands. Shared by the basic and
// the room commands so every command reads its arguments the same way.

import { roomKey } from "../protocol/validate.ts";
import type { ChatCommand, CommandContext } from "./commands.ts";

/** Splits "word rest of text" at the first whitespace; the rest is trimmed. */
export function splitFirstWord(text: string): [string, string] {
  const space = text.search(/\s/);
  return space === -1 ? [text, ""] : [text.slice(0, space), text.slice(space).trim()];
}

export function printUsage(cmd: ChatCommand, ctx: CommandContext): void {
  ctx.print(`Usage: ${cmd.usage}`, "error");
}

/** Where an argument can only be a room, "rust" means "#rust". */
export function roomName(word: string): string {
  return word.startsWith("#") ? word : `#${word}`;
}

/**
 * Splits "[#ROOM] rest": a first word starting with "#" names the room (user names cannot
 * contain "#"), otherwise the current room is meant; undefined when there is none.
 */
export function roomAndRest(args: string, ctx: CommandContext): [string | undefined, string] {
  const [first, rest] = splitFirstWord(args);
  return first.startsWith("#") ? [first, rest] : [ctx.currentRoom(), args];
}

/** The joined room called `name` (any case), as the server shows it. */
export function joinedRoom(name: string, ctx: CommandContext): string | undefined {
  return ctx.joinedRooms().find((room) => roomKey(room) === roomKey(name));
}
