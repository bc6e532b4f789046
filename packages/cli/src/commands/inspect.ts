/**
 * `luo inspect IMAGE`: decode the handover state in a memory image (see `../inspect/`).
 *
 * Exit codes: 0 decoded without problems; 1 the image is not a handover this can decode (no
 * valid KHO root FDT, corrupt headers) or a part of it is corrupt (listed under problems);
 * 2 usage errors and unreadable files.
 */
import { writeFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { UsageError, type RunIO } from "../io.js";
import { DEFAULT_HASH_LIMIT, inspectImage, isInputError } from "../inspect/decode.js";
import { formatInspectHtml } from "../inspect/html.js";
import { openHandoverImage, type OpenedImage } from "../inspect/open-image.js";
import { formatInspectText } from "../inspect/text.js";

const HELP = `usage:
  luo inspect IMAGE [--fdt-addr ADDR] [--phys-base ADDR] [--json] [--html FILE] [--hash-limit BYTES]

  IMAGE, by its first bytes:
    ELF core          'luo simulate --out' (the root FDT named in its note)
    KHOSPRS1          sparse page image (the golden handover-pages.bin)
    zstd              decompressed to a temporary file first (zstd -dc --long=31)
    anything else     raw physical-memory dump (QEMU pmemsave), file offset 0 = --phys-base
  --fdt-addr ADDR     the KHO root FDT's physical address; default: found (ELF note, x86
                      boot_params -> setup_data type 10, else a scan for kho-v4 FDT pages)
  --phys-base ADDR    physical address of a raw dump's first byte (default 0)
  --json              the report as JSON, schema "luo-inspect/1": addresses and tokens as
                      "0x..." strings; every memfd with session, token, size, pos, seals, sha256
  --html FILE         also write a self-contained page with a picture of the memory map
  --hash-limit BYTES  skip the sha256 of memfds larger than this (default 4 GiB)
  ADDR and BYTES: decimal or 0x hex.

  Prints the KHO root FDT and its sub-trees, the preserved runs by order, the LUO sessions
  and files, and each memfd (memfd-v0/v1/v2) with size, pos, seals, folios and the sha256
  of its contents as the next kernel would retrieve them.
  Exit 0 decoded, 1 not decodable or corrupt (problems listed), 2 usage.
`;

const MAX_ADDRESS = 2 ** 52;

function parseNumber(flag: string, text: string): number {
  const t = text.trim().replace(/_/g, "");
  const n = /^0x[0-9a-f]+$/i.test(t) ? parseInt(t.slice(2), 16) : /^[0-9]+$/.test(t) ? Number(t) : NaN;
  if (!Number.isSafeInteger(n) || n < 0 || n >= MAX_ADDRESS) throw new UsageError(`${flag} must be a number (decimal or 0x hex) below 2^52, not '${text}'`, HELP);
  return n;
}

/** Run `luo inspect ...` (the arguments after `inspect`). */
export async function inspectCommand(argv: readonly string[], io: RunIO): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      options: {
        "fdt-addr": { type: "string" },
        "phys-base": { type: "string" },
        "hash-limit": { type: "string" },
        json: { type: "boolean" },
        html: { type: "string" },
        help: { type: "boolean", short: "h" },
      },
      allowPositionals: true,
    });
  } catch (e) {
    throw new UsageError((e as Error).message, HELP);
  }
  const { values, positionals } = parsed;
  if (values.help === true) {
    io.stdout(HELP);
    return 0;
  }
  if (positionals.length !== 1) throw new UsageError(positionals.length === 0 ? "missing IMAGE" : `expected one IMAGE, got ${positionals.length}`, HELP);
  const file = positionals[0]!;
  const fdtAddr = values["fdt-addr"] === undefined ? undefined : parseNumber("--fdt-addr", values["fdt-addr"]);
  const physBase = values["phys-base"] === undefined ? undefined : parseNumber("--phys-base", values["phys-base"]);
  const hashLimit = values["hash-limit"] === undefined ? DEFAULT_HASH_LIMIT : parseNumber("--hash-limit", values["hash-limit"]);
  if (values.html === "") throw new UsageError("--html needs a FILE", HELP);

  let opened: OpenedImage | undefined;
  try {
    opened = openHandoverImage(file, physBase === undefined ? {} : { physBase });
    const result = await inspectImage(opened, { hashLimit, ...(fdtAddr === undefined ? {} : { fdtAddr }) });
    if (values.html !== undefined) {
      try {
        writeFileSync(values.html, formatInspectHtml(result));
      } catch (e) {
        throw new UsageError(`cannot write ${values.html}: ${(e as NodeJS.ErrnoException).code ?? "EIO"}`);
      }
    }
    io.stdout(values.json === true ? `${JSON.stringify(result.report, null, 2)}\n` : formatInspectText(result.report));
    if (result.report.problems.length > 0) {
      if (values.json === true) io.stderr(`luo: ${file}: ${result.report.problems.length} problem${result.report.problems.length === 1 ? "" : "s"} (see "problems")\n`);
      return 1;
    }
    return 0;
  } catch (e) {
    if (!isInputError(e)) throw e;
    io.stderr(`luo: ${file}: ${e.message}\n`);
    return 1;
  } finally {
    opened?.close();
  }
}
