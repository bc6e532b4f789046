/** The README's usage example, run as written (so it cannot rot). */
import { readFileSync } from "node:fs";
import { LiveUpdate } from "@liveupdate/luo-core";
import { createMemfd } from "@liveupdate/memfd";
import { expect, it } from "vitest";
import { decodeMemfdV0, memfdV0 } from "../src/index.js";
import { asMemfd } from "./support/args.js";

it("the README example runs and prints what it says", () => {
  const readme = readFileSync(new URL("../README.md", import.meta.url), "utf8");
  expect(readme).toContain('old.open().createSession("vm-42").preserveFd(ram, 0x1234n);');
  const old = LiveUpdate.boot({ memory: "8 GiB", handlers: [memfdV0] });
  const ram = createMemfd(old.machine, { name: "vm-ram" });
  ram.write(new TextEncoder().encode("guest memory"));
  old.open().createSession("vm-42").preserveFd(ram, 0x1234n);
  const next = old.kexec({ handlers: [memfdV0] });
  const file = next.inspectIncoming()!.sessions[0]!.files[0]!;
  expect(decodeMemfdV0(next.machine.memory, file.data).folios.length).toBe(1);
  const back = next.open().retrieveSession("vm-42").retrieveFd(0x1234n);
  expect(new TextDecoder().decode(asMemfd(back).pread(0, 12))).toBe("guest memory");
});
