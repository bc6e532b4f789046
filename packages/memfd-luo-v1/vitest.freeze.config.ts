import { defineConfig } from "vitest/config";

/** `pnpm fixtures:freeze`: freeze the fixtures that do not exist yet (never overwrites). */
export default defineConfig({
  test: {
    name: "memfd-luo-v1-freeze",
    include: ["scripts/freeze-fixtures.ts"],
  },
});
