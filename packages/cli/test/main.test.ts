import { expect, it } from "vitest";
import { run } from "../src/index.js";

it("echoes", async () => {
  let out = "";
  const code = await run(["x"], { stdout: (t) => (out += t), stderr: () => undefined });
  expect(code).toBe(0);
  expect(out).toBe("luo x\n");
});
