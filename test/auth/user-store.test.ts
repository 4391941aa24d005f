// The JSON file store against the account store contract; another handle is a second store
// opened on the same file, as a `register --db` next to a running server is.

import { JsonFileStore } from "../../src/auth/store.ts";
import { tempDir } from "../helpers/tmp.ts";
import { describeUserStoreContract } from "./user-store-contract.ts";

describeUserStoreContract("JsonFileStore", async () => {
  const dir = await tempDir();
  const path = dir.file("users.json");
  const opened = [await JsonFileStore.open(path)];
  return {
    store: opened[0]!,
    async another() {
      const store = await JsonFileStore.open(path);
      opened.push(store);
      return store;
    },
    async [Symbol.asyncDispose]() {
      await Promise.all(opened.map((store) => store.close()));
      await dir[Symbol.asyncDispose]();
    },
  };
});
