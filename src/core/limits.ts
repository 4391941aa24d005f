// Every limit the server enforces, each named with its unit: the defaults of what operators tune
// with `serve` options, and the fixed bounds that keep one connection from costing too much.
// `ServerLimits` is the server's configuration; clients are told part of it (`welcome.limits`).

import { availableParallelism } from "node:os";

/** Longest frame, newline excluded. A longer line gets `too_long` and the connection closes. */
export const MAX_LINE_BYTES = 16 * 1024;
/** Longest room message or dm text, in Unicode code points. */
export const MAX_TEXT_CHARS = 4096;

/** Time a fresh connection has to log in, register-and-log-in, or resume. */
export const AUTH_TIMEOUT_MS = 10_000;
/** A connection that sends no frame for this long is closed; clients ping to stay alive. */
export const IDLE_TIMEOUT_MS = 90_000;
/** After an error frame that closes the connection, how long the peer gets to read it. */
export const CLOSE_GRACE_MS = 250;
/** How long a graceful shutdown waits for queues to flush before it cuts connections. */
export const SHUTDOWN_GRACE_MS = 1_000;

/** Connection caps: `server_full` past either. */
export const MAX_CONNECTIONS = 20_000;
export const MAX_CONNECTIONS_PER_IP = 64;

/** Outbound bytes queued for one connection before it counts as a slow consumer and is dropped. */
export const MAX_OUTBOUND_BYTES = 1024 * 1024;
/** Largest single write; bigger batches are split so one client cannot monopolise a turn. */
export const MAX_WRITE_BYTES = 64 * 1024;

/** Room messages and dms per connection: a token bucket. */
export const MESSAGE_RATE_PER_SEC = 10;
export const MESSAGE_BURST = 30;
/** Frames of any kind per connection (pings, who, garbage): generous, but a flood is cut off. */
export const FRAME_RATE_PER_SEC = 50;
export const FRAME_BURST = 100;
/** Consecutive rate-limited frames after which the flooder is disconnected. */
export const MAX_RATE_VIOLATIONS = 20;

/** Failed logins allowed per IP / per user before delays start, and the delay growth. */
export const FREE_LOGIN_FAILURES = 5;
export const LOGIN_BACKOFF_BASE_MS = 1_000;
export const LOGIN_BACKOFF_MAX_MS = 5 * 60_000;
/** Failures are forgotten after this long without another one. */
export const LOGIN_FAILURE_WINDOW_MS = 15 * 60_000;

/**
 * Password hashes computed at once (each ~35 ms of one core), and how many may wait: about what
 * the hasher finishes within AUTH_TIMEOUT_MS, so a queued login is not left to time out.
 */
export const MAX_CONCURRENT_HASHES = 2;
export const MAX_QUEUED_HASHES = 256;

/** Room messages sent on login and join (and all the in-memory log keeps), by count and by encoded size. */
export const HISTORY_SIZE = 100;
export const HISTORY_MAX_BYTES = 256 * 1024;
/** Messages per room, and of dms, sent at login after a client's `since` mark. */
export const CATCH_UP_PER_ROOM = 200;
/** Messages per `history` reply, and results per `search`, when the client names no limit. */
export const DEFAULT_HISTORY_PAGE = 100;
export const DEFAULT_SEARCH_RESULTS = 20;
/** A say or dm resent with the same ref within this long is acknowledged, not stored again. */
export const REF_WINDOW_MS = 10 * 60_000;
/** Messages older than this are removed from the log. */
export const HISTORY_RETENTION_MS = 90 * 24 * 60 * 60_000;
/** Messages kept per room at most; older ones are removed. */
export const HISTORY_MAX_MESSAGES_PER_ROOM = 1_000_000;
/** How often retention runs; each run removes in small steps so the relay never waits long. */
export const HISTORY_TRIM_INTERVAL_MS = 60_000;

/**
 * Presence and membership notices (online/offline, join/leave) go to a room only while it has at
 * most this many connections online: each notice reaches everyone, so a crowd logging in would
 * cost N² deliveries.
 */
export const PRESENCE_NOTICE_MAX_CONNECTIONS = 1_000;

/** Rooms one user may be a member of at once. */
export const MAX_ROOMS_PER_USER = 100;
/** Rooms on the server in total. */
export const MAX_ROOMS = 10_000;
/** Existing rooms one user may have created, so open registration cannot fill MAX_ROOMS. */
export const MAX_ROOMS_CREATED_PER_USER = 10;
/** Longest room topic, in Unicode code points. */
export const MAX_TOPIC_CHARS = 300;
/** A room with no members for this long is removed (never the lobby). */
export const ROOM_EXPIRY_MS = 30 * 24 * 60 * 60_000;
/** How often empty rooms are looked for. */
export const ROOM_SWEEP_INTERVAL_MS = 60 * 60_000;
/** Largest list reply (who, rooms, member lists, history): it must fit an outbound queue with room to spare. */
export const MAX_LIST_REPLY_BYTES = 256 * 1024;
/** Rooms per `rooms` reply unless the client asks for another page size. */
export const DEFAULT_ROOMS_PAGE = 100;

/**
 * Logins that enter the chat in one event-loop turn; more wait for the next. Entering costs in
 * proportion to who is online (an `online` notice to each), so 1,000 logins by key entered at
 * once held other users' messages up by ~0.2 s; 16 per turn keeps their p99 near 30 ms and still
 * lets the thousand in within ~0.4 s (bench: key login storm, 2 cores).
 */
export const MAX_ENTERS_PER_TURN = 16;

/** Password checks running at once for one client address; more wait their turn. */
export const MAX_CONCURRENT_LOGINS_PER_IP = 4;

/** Resume tokens stay valid this long. */
export const RESUME_TOKEN_TTL_MS = 24 * 60 * 60_000;

/** Client certificates (keys) one account may hold; each is a line in the account store. */
export const MAX_KEYS_PER_ACCOUNT = 16;
/**
 * A key's "last used" time is written when a login finds it older than this, so logging in by
 * key almost never writes the account store: the time is right to the day.
 */
export const KEY_LAST_USED_RESOLUTION_MS = 24 * 60 * 60_000;

/** Failed-login records kept at most (per address and per user together). */
export const MAX_THROTTLE_ENTRIES = 100_000;
/** Frames a client may send while its login is being checked; more is a flood. */
export const MAX_PENDING_FRAMES = 64;
/** Connections past MAX_CONNECTIONS that still get a `server_full` frame; beyond, they are cut. */
export const REFUSAL_HEADROOM = 256;

export interface ThrottlePolicy {
  freeFailures: number;
  baseDelayMs: number;
  maxDelayMs: number;
  /** Failures older than this are forgotten. */
  windowMs: number;
  /** Tracked keys at most; the oldest are forgotten first, so memory stays bounded. */
  maxEntries: number;
}

export interface ServerLimits {
  authTimeoutMs: number;
  idleTimeoutMs: number;
  maxConnections: number;
  maxConnectionsPerIp: number;
  maxOutboundBytes: number;
  /** All connections' queues together; the largest are dropped past it. Undefined: a share of the machine's memory. */
  maxOutboundMemoryBytes?: number;
  messageRatePerSec: number;
  messageBurst: number;
  maxRateViolations: number;
  historySize: number;
  historyRetentionMs: number;
  historyMaxMessagesPerRoom: number;
  presenceMaxConnections: number;
  maxRoomsPerUser: number;
  maxRooms: number;
  maxRoomsCreatedPerUser: number;
  roomExpiryMs: number;
  maxConcurrentHashes: number;
  maxQueuedHashes: number;
  throttle: ThrottlePolicy;
}

export function defaultLimits(): ServerLimits {
  return {
    authTimeoutMs: AUTH_TIMEOUT_MS,
    idleTimeoutMs: IDLE_TIMEOUT_MS,
    maxConnections: MAX_CONNECTIONS,
    maxConnectionsPerIp: MAX_CONNECTIONS_PER_IP,
    maxOutboundBytes: MAX_OUTBOUND_BYTES,
    messageRatePerSec: MESSAGE_RATE_PER_SEC,
    messageBurst: MESSAGE_BURST,
    maxRateViolations: MAX_RATE_VIOLATIONS,
    historySize: HISTORY_SIZE,
    historyRetentionMs: HISTORY_RETENTION_MS,
    historyMaxMessagesPerRoom: HISTORY_MAX_MESSAGES_PER_ROOM,
    presenceMaxConnections: PRESENCE_NOTICE_MAX_CONNECTIONS,
    maxRoomsPerUser: MAX_ROOMS_PER_USER,
    maxRooms: MAX_ROOMS,
    maxRoomsCreatedPerUser: MAX_ROOMS_CREATED_PER_USER,
    roomExpiryMs: ROOM_EXPIRY_MS,
    // Leave a core for relaying: hashing must never stall message delivery.
    maxConcurrentHashes: Math.max(1, Math.min(MAX_CONCURRENT_HASHES, availableParallelism() - 1)),
    maxQueuedHashes: MAX_QUEUED_HASHES,
    throttle: {
      freeFailures: FREE_LOGIN_FAILURES,
      baseDelayMs: LOGIN_BACKOFF_BASE_MS,
      maxDelayMs: LOGIN_BACKOFF_MAX_MS,
      windowMs: LOGIN_FAILURE_WINDOW_MS,
      maxEntries: MAX_THROTTLE_ENTRIES,
    },
  };
}
