// The commands about the server's message log: paging back through a room's history, searching
// the user's rooms and dms, and deleting a message by the id a search shows.

import { MAX_SEARCH_QUERY_CHARS } from "../protocol/frames.ts";
import { joinedRoom, printUsage, roomName, splitFirstWord } from "./command-args.ts";
import type { ChatCommand } from "./commands.ts";

export function logCommands(): ChatCommand[] {
  const history: ChatCommand = {
    name: "history",
    usage: "/history [#ROOM]",
    help: "Show the room's messages before the oldest one shown",
    completes: "room",
    run(args, ctx) {
      if (/\s/.test(args)) return printUsage(history, ctx);
      const room = args === "" ? ctx.currentRoom() : joinedRoom(roomName(args), ctx);
      if (room === undefined) return ctx.print(args === "" ? "You are in no room; /join one first" : `You are not in ${roomName(args)}`, "error");
      if (!ctx.olderHistory(room)) {
        ctx.print(`Older messages of ${room} cannot be asked for yet (not connected, catching up, or a page is on its way)`, "error");
      }
    },
  };

  const search: ChatCommand = {
    name: "search",
    usage: "/search [#ROOM] WORDS",
    help: "Find the messages with all these words in your rooms and dms, or in one room; newest first",
    run(args, ctx) {
      const [first, rest] = splitFirstWord(args);
      const room = first.startsWith("#") ? first : undefined;
      const query = room === undefined ? args : rest;
      if (query === "") return printUsage(search, ctx);
      if (query.length > MAX_SEARCH_QUERY_CHARS) return ctx.print(`A search is at most ${MAX_SEARCH_QUERY_CHARS} characters`, "error");
      ctx.send(room === undefined ? { type: "search", query } : { type: "search", query, room });
    },
  };

  const remove: ChatCommand = {
    name: "delete",
    usage: "/delete ID",
    help: "Delete a message by the id /search shows: your own, or any in a room you operate",
    run(args, ctx) {
      const id = /^\d+$/.test(args) ? Number(args) : 0;
      if (!Number.isSafeInteger(id) || id < 1) return printUsage(remove, ctx);
      ctx.send({ type: "delete", id });
    },
  };

  return [history, search, remove];
}
