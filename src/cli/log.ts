// Prints server log events on stderr, one line each, as text or JSON.

import type { Logger, LogFields } from "../server/log.ts";

export type LogFormat = "text" | "json";

export function createLogger(stream: NodeJS.WritableStream, format: LogFormat, now: () => Date = () => new Date()): Logger {
  const write = (level: string) => (event: string, fields: LogFields = {}) => {
    const time = now().toISOString();
    if (format === "json") {
      stream.write(JSON.stringify({ time, level, event, ...fields }) + "\n");
      return;
    }
    const parts = [time, level.toUpperCase().padEnd(5), event];
    for (const [name, value] of Object.entries(fields)) {
      if (value === undefined) continue;
      const text = String(value);
      parts.push(`${name}=${/[\s"=]/.test(text) || text === "" ? JSON.stringify(text) : text}`);
    }
    stream.write(parts.join(" ") + "\n");
  };
  return { info: write("info"), warn: write("warn"), error: write("error") };
}
