import { defineConfig } from "vitest/config";

// Root entry for running every package's tests from the top: `pnpm vitest run`.
export default defineConfig({
  test: {
    projects: ["packages/*", "tools/*", "examples/*"],
  },
});
