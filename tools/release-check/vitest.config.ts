import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    name: "release-check",
    include: ["test/**/*.test.ts"],
    testTimeout: 120_000,
    reporters: ["default", "json"],
    outputFile: { json: ".vitest/report.json" },
  },
});
