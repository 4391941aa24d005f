// The commands about rooms: joining, parting, listing and switching between them, who is in
// one, its topic, and the operators' moderation (kick, ban, mute, op, invite, invite-only).
// Room commands act on the current room unless a "#room" comes first.

import { MAX_MODERATION_SECONDS, type ModerationAction, type ModerationRequest } from "../protocol/frames.ts";
import { joinedRoom, printUsage, roomAndRest, roomName, splitFirstWord } from "./command-args.ts";
import type { ChatCommand, CommandContext } from "./commands.ts";
import { formatDuration, parseDuration } from "./duration.ts";

const MAX_DURATION = formatDuration(MAX_MODERATION_SECONDS);

type Extras = Pick<ModerationRequest, "seconds" | "reason">;
/** Reads what follows the user; undefined when it is wrong (and has said why). */
type ExtrasReader = (rest: string, ctx: CommandContext) => Extras | undefined;

/** A moderation command: `[#ROOM] USER`, then what `extras` reads from the rest, if it takes any. */
function moderation(action: ModerationAction, usage: string, help: string, extras?: ExtrasReader): ChatCommand {
  const cmd: ChatCommand = {
    name: action,
    usage,
    help,
    completes: "user",
    run(args, ctx) {
      const [room, rest] = roomAndRest(args, ctx);
      const [user, more] = splitFirstWord(rest);
      if (room === undefined || user === "" || (extras === undefined && more !== "")) return printUsage(cmd, ctx);
      const fields = extras === undefined ? {} : extras(more, ctx);
      if (fields !== undefined) ctx.send({ type: action, room, user, ...fields });
    },
  };
  return cmd;
}

const reasonOnly: ExtrasReader = (rest) => (rest === "" ? {} : { reason: rest });

/** "[DURATION] [REASON]"; a bare number is refused rather than guessed to be seconds or a reason. */
const durationAndReason: ExtrasReader = (rest, ctx) => {
  const [first, after] = splitFirstWord(rest);
  if (/^\d+$/.test(first)) {
    ctx.print(`Give the duration a unit: ${first}s, ${first}m, ${first}h or ${first}d`, "error");
    return undefined;
  }
  const seconds = parseDuration(first);
  if (seconds === undefined) return reasonOnly(rest, ctx);
  if (seconds < 1 || seconds > MAX_MODERATION_SECONDS) {
    ctx.print(`A duration is from 1s to ${MAX_DURATION}; leave it out for no end`, "error");
    return undefined;
  }
  return after === "" ? { seconds } : { seconds, reason: after };
};

export function roomCommands(): ChatCommand[] {
  const join: ChatCommand = {
    name: "join",
    usage: "/join #ROOM",
    help: "Join a room (created if it does not exist) and talk there",
    completes: "room",
    run(args, ctx) {
      if (args === "" || /\s/.test(args)) return printUsage(join, ctx);
      const room = roomName(args);
      const joined = joinedRoom(room, ctx);
      if (joined !== undefined) return ctx.switchTo(joined);
      ctx.send({ type: "join", room });
      ctx.switchWhenJoined(room);
    },
  };

  const part: ChatCommand = {
    name: "part",
    aliases: ["leave"],
    usage: "/part [#ROOM]",
    help: "Leave a room (you stay a member of the others)",
    completes: "room",
    run(args, ctx) {
      const room = args === "" ? ctx.currentRoom() : roomName(args);
      if (room === undefined || /\s/.test(args)) return printUsage(part, ctx);
      ctx.send({ type: "part", room });
    },
  };

  const switchRoom: ChatCommand = {
    name: "switch",
    usage: "/switch #ROOM",
    help: "Talk in another of your rooms (also Alt-1..9, Ctrl-N, Ctrl-P)",
    completes: "room",
    run(args, ctx) {
      if (args === "" || /\s/.test(args)) return printUsage(switchRoom, ctx);
      const room = joinedRoom(roomName(args), ctx);
      if (room === undefined) return ctx.print(`You are not in ${roomName(args)}; /join it first`, "error");
      ctx.switchTo(room);
    },
  };

  const rooms: ChatCommand = {
    name: "rooms",
    usage: "/rooms [AFTER]",
    help: "List the server's rooms (the next page: those after the room AFTER)",
    completes: "room",
    run(args, ctx) {
      if (/\s/.test(args)) return printUsage(rooms, ctx);
      ctx.send(args === "" ? { type: "rooms" } : { type: "rooms", after: roomName(args) });
    },
  };

  const who: ChatCommand = {
    name: "who",
    usage: "/who [#ROOM]",
    help: "Ask the server who is online (everywhere, or in one room)",
    completes: "room",
    run(args, ctx) {
      if (/\s/.test(args)) return printUsage(who, ctx);
      ctx.send(args === "" ? { type: "who" } : { type: "who", room: roomName(args) });
    },
  };

  const topic: ChatCommand = {
    name: "topic",
    usage: "/topic [TEXT]",
    help: "Show the current room's topic, or set it (operators)",
    run(args, ctx) {
      const room = ctx.currentRoom();
      if (room === undefined) return ctx.print("You are in no room; /join one first", "error");
      if (args !== "") return ctx.send({ type: "topic", room, topic: args });
      const known = ctx.topicOf(room);
      if (known === undefined) return ctx.send({ type: "join", room }); // A member's join is answered with the room's topic.
      ctx.print(known === "" ? `${room} has no topic` : `Topic of ${room}: ${known}`, "status");
    },
  };

  const inviteOnly: ChatCommand = {
    name: "invite-only",
    usage: "/invite-only [#ROOM] on|off",
    help: "Let only invited users join the room, or everyone again (operators)",
    run(args, ctx) {
      const [room, setting] = roomAndRest(args, ctx);
      if (room === undefined || (setting !== "on" && setting !== "off")) return printUsage(inviteOnly, ctx);
      ctx.send({ type: "mode", room, invite_only: setting === "on" });
    },
  };

  return [
    join,
    part,
    switchRoom,
    rooms,
    who,
    topic,
    moderation("kick", "/kick [#ROOM] USER [REASON]", "Put a user out of the room; they may come back (operators)", reasonOnly),
    moderation("ban", "/ban [#ROOM] USER [DURATION] [REASON]", "Put a user out and keep them out, for DURATION or for good (operators)", durationAndReason),
    moderation("unban", "/unban [#ROOM] USER", "Lift a user's ban (operators)"),
    moderation("mute", "/mute [#ROOM] USER [DURATION] [REASON]", "Stop a user talking in the room, for DURATION or for good (operators)", durationAndReason),
    moderation("unmute", "/unmute [#ROOM] USER", "Let a muted user talk again (operators)"),
    moderation("op", "/op [#ROOM] USER", "Make a member an operator of the room (operators)"),
    moderation("deop", "/deop [#ROOM] USER", "Take a member's operator rights away (operators)"),
    moderation("invite", "/invite [#ROOM] USER", "Let a user join the invite-only room (operators)"),
    inviteOnly,
  ];
}
