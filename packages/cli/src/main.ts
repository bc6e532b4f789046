/**
 * `luo`: command dispatch. Each command group lives in `commands/<group>.ts` and gets the
 * arguments after its name; exit codes are the command's (0 ok, 1 "the answer is no",
 * 2 usage or I/O error). Commands are imported when run, so `luo --version` and a light
 * command do not pay for the packages a heavy one needs.
 */
import { UsageError, type RunIO } from "./io.js";

export type { RunIO } from "./io.js";

const VERSION = "0.1.0";

const HELP = `luo: model, run and inspect Linux live updates (LUO, KHO, FDT)

usage: luo <command> [args]

commands:
  simulate [--consumer H,..] [--out F] [--json]    boot, preserve, kexec, retrieve, verify every byte
  fdt check FILE [--mode libfdt|strict] [--json]   validate a device tree blob
  fdt convert FILE -o OUT [--layout dtc|sw|packed] re-encode in a writer's byte layout
  fdt dump FILE [--offsets] [--json]               print the tree as dts (or JSON)
  matrix [--handler MOD]... [--json] [--html F]    producer format x next-kernel handlers, verified
  inspect IMAGE [--fdt-addr A] [--json] [--html F] decode the handover in an ELF core, raw dump or KHOSPRS1 image

  luo <command> --help   help for one command
  luo --version
`;

const defaultIO: RunIO = {
  stdout: (t) => process.stdout.write(t),
  stderr: (t) => process.stderr.write(t),
  isTTY: process.stdout.isTTY,
};

/** Run `luo` with `argv` (without the program name); resolves to the exit code. */
export async function run(argv: readonly string[], io: RunIO = defaultIO): Promise<number> {
  try {
    return await dispatch(argv, io);
  } catch (e) {
    if (e instanceof UsageError) {
      io.stderr(`luo: ${e.message}\n${e.help ? `\n${e.help}` : ""}`);
      return 2;
    }
    throw e;
  }
}

function dispatch(argv: readonly string[], io: RunIO): number | Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case undefined:
    case "help":
    case "--help":
    case "-h":
      io.stdout(HELP);
      return command === undefined ? 2 : 0;
    case "--version":
    case "-V":
      io.stdout(`luo ${VERSION}\n`);
      return 0;
    case "fdt":
      return import("./commands/fdt.js").then((m) => m.fdtCommand(rest, io));
    case "simulate":
      return import("./commands/simulate.js").then((m) => m.simulateCommand(rest, io));
    case "inspect":
      return import("./commands/inspect.js").then((m) => m.inspectCommand(rest, io));
    case "matrix":
      return import("./commands/matrix.js").then((m) => m.matrixCommand(rest, io));
    default:
      throw new UsageError(`unknown command '${command}'`, HELP);
  }
}
