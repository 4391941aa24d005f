// A chat database that behaves as if its disk were full: the next write that needs a new page fails.

import type { Database } from "bun:sqlite";

export function fillDisk(db: Database): void {
  // Migrations leave free pages behind (a dropped index); a write would reuse those first.
  db.exec("VACUUM");
  const pages = db.query<{ page_count: number }, []>("PRAGMA page_count").get()!.page_count;
  db.exec(`PRAGMA max_page_count = ${pages}`);
}
