/**
 * The `kexec-metadata` sub-tree (Linux 7.2 `kho_kexec_metadata`, packed, 73 bytes):
 *
 * | off | field | type |
 * |---|---|---|
 * | 0 | version | u32 LE, 1 |
 * | 4 | previous_release | char[65], NUL-terminated (`strscpy`), zero-filled |
 * | 69 | kexec_count | u32 LE: kexecs behind the kernel that wrote it, plus one |
 *
 * Every KHO kernel writes one at `kho_init` (a zeroed `kho_alloc_preserve` page, added as
 * a sub-tree right after the root FDT is built) and reads the previous kernel's, ignoring it
 * (not an error) when it is missing, too small or of another version.
 */
import { KHO_KEXEC_METADATA_RELEASE_LEN, KHO_KEXEC_METADATA_SIZE, KHO_KEXEC_METADATA_VERSION } from "./abi.js";

/** The decoded blob. */
export interface KexecMetadata {
  readonly version: number;
  /** `uname -r` of the kernel that wrote it. */
  readonly previousRelease: string;
  /** How many kexecs led to the kernel after the writer (1 after a cold boot's kexec). */
  readonly kexecCount: number;
}

const RELEASE_OFFSET = 4;
const COUNT_OFFSET = RELEASE_OFFSET + KHO_KEXEC_METADATA_RELEASE_LEN; // 69

/** The 73-byte blob the kernel writes, `release` cut as `strscpy` does (64 bytes + NUL). */
export function encodeKexecMetadata(release: string, kexecCount: number): Uint8Array {
  const out = new Uint8Array(KHO_KEXEC_METADATA_SIZE);
  const view = new DataView(out.buffer);
  view.setUint32(0, KHO_KEXEC_METADATA_VERSION, true);
  const name = new TextEncoder().encode(release).subarray(0, KHO_KEXEC_METADATA_RELEASE_LEN - 1);
  out.set(name, RELEASE_OFFSET);
  view.setUint32(COUNT_OFFSET, kexecCount >>> 0, true);
  return out;
}

/**
 * `kho_in_kexec_metadata`: the blob's contents, or undefined when the kernel would ignore it
 * (`blobSize` below 4 or below 73, version not 1). `blob` holds at least
 * `min(blobSize, 73)` bytes.
 */
export function decodeKexecMetadata(blob: Uint8Array, blobSize: number): KexecMetadata | undefined {
  if (blobSize < 4 || blob.length < 4) return undefined;
  const view = new DataView(blob.buffer, blob.byteOffset, blob.byteLength);
  const version = view.getUint32(0, true);
  if (version !== KHO_KEXEC_METADATA_VERSION) return undefined;
  if (blobSize < KHO_KEXEC_METADATA_SIZE || blob.length < KHO_KEXEC_METADATA_SIZE) return undefined;
  const field = blob.subarray(RELEASE_OFFSET, COUNT_OFFSET);
  let end = field.indexOf(0);
  // strscpy into a 65-byte buffer: at most 64 characters, always terminated.
  if (end < 0 || end > KHO_KEXEC_METADATA_RELEASE_LEN - 1) end = KHO_KEXEC_METADATA_RELEASE_LEN - 1;
  const previousRelease = new TextDecoder().decode(field.subarray(0, end));
  return { version, previousRelease, kexecCount: view.getUint32(COUNT_OFFSET, true) };
}
