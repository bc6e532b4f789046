/** Command dispatch for `luo`. */

/** Where a command writes; injectable so tests can capture output. */
export interface RunIO {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
}

const defaultIO: RunIO = {
  stdout: (t) => process.stdout.write(t),
  stderr: (t) => process.stderr.write(t),
};

/** Run `luo` with `argv` (without the program name); resolves to the exit code. */
export function run(argv: readonly string[], io: RunIO = defaultIO): Promise<number> {
  io.stdout(`luo ${argv.join(" ")}\n`);
  return Promise.resolve(0);
}
