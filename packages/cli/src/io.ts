/** What a command needs from its surroundings; injectable so tests capture output. */
import { readFileSync } from "node:fs";

/** Output sinks for a command run. */
export interface RunIO {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  /** Whether stdout is a terminal (progress bars and colour only then). */
  isTTY?: boolean;
}

/** Bad arguments, a missing file: exit code 2 with a message (and the command's help). */
export class UsageError extends Error {
  readonly help: string;
  constructor(message: string, help = "") {
    super(message);
    this.name = "UsageError";
    this.help = help;
  }
}

/** Read a whole input file; a missing or unreadable one is a usage error, not a crash. */
export function readInput(path: string): Uint8Array {
  try {
    return new Uint8Array(readFileSync(path));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? "EIO";
    throw new UsageError(`cannot read ${path}: ${code}`);
  }
}
