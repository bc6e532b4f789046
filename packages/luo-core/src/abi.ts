/**
 * The Live Update Orchestrator ABI, `luo-v5` (Linux 7.2 `include/linux/kho/abi/luo.h` and
 * `include/uapi/linux/liveupdate.h`): every layout, constant and compatible string of the
 * format in one place. All structs are packed and little-endian; strings are NUL-terminated
 * and truncated to fit (`strscpy`), matched with `strcmp` / `strncmp`.
 *
 * ```text
 * KHO sub-tree "LUO": a raw blob (not an FDT), blob-size 32
 *   luo_ser (32)          0 char compatible[8] = "luo-v5"   8 u64 liveupdate_num
 *                        16 u64 sessions_pa (0: none)       24 u64 flbs_pa
 * sessions: a KHO block chain (4 KiB blocks {u64 next; u64 count} + entries), 51 per block
 *   luo_session_ser (80)  0 char name[64]   64 u64 files (first file block, 0: none)   72 u64 count
 * each session's files: a KHO block chain, 63 per block
 *   luo_file_ser (64)     0 char compatible[48]   48 u64 data   56 u64 token
 * FLBs: one preserved page at flbs_pa
 *   luo_flb_header_ser (16)  0 u64 pgcnt = 1   8 u64 count
 *   luo_flb_ser (64)         0 char name[48]   48 u64 data   56 u64 count     (at most 63)
 * ```
 *
 * @packageDocumentation
 */
import { KHO_BLOCK_HEADER_SIZE, PAGE_SIZE, khoBlockEntriesPerBlock } from "@liveupdate/kho";

/** The KHO sub-tree LUO registers its state under. */
export const LUO_KHO_ENTRY_NAME = "LUO";
/** `LUO_ABI_COMPATIBLE`: the version of this whole format. */
export const LUO_ABI_COMPATIBLE = "luo-v5";
/** `LUO_ABI_COMPAT_LEN`: `ALIGN(sizeof("luo-v5"), 8)`. */
export const LUO_ABI_COMPAT_LEN = 8;

/** `struct luo_ser`. */
export const LUO_SER_SIZE = 32;
/** `luo_ser.compatible` (char[8]). */
export const LUO_SER_COMPATIBLE_OFFSET = 0;
/** `luo_ser.liveupdate_num` (u64). */
export const LUO_SER_LIVEUPDATE_NUM_OFFSET = 8;
/** `luo_ser.sessions_pa` (u64): first session block, 0 if none. */
export const LUO_SER_SESSIONS_PA_OFFSET = 16;
/** `luo_ser.flbs_pa` (u64): the FLB page. */
export const LUO_SER_FLBS_PA_OFFSET = 24;

/** `LIVEUPDATE_SESSION_NAME_LENGTH`: a session name is at most 63 bytes plus its NUL. */
export const LIVEUPDATE_SESSION_NAME_LENGTH = 64;

/** `struct luo_session_ser`: name, then the embedded `luo_file_set_ser {files, count}`. */
export const LUO_SESSION_SER_SIZE = 80;
/** `luo_session_ser.name` (char[64]). */
export const LUO_SESSION_SER_NAME_OFFSET = 0;
/** `luo_session_ser.file_set_ser.files` (u64): first file block, 0 if none. */
export const LUO_SESSION_SER_FILES_OFFSET = 64;
/** `luo_session_ser.file_set_ser.count` (u64): files in the chain. */
export const LUO_SESSION_SER_COUNT_OFFSET = 72;
/** Sessions per 4 KiB serialization block: (4096 - 16) / 80 = 51. */
export const LUO_SESSIONS_PER_BLOCK = khoBlockEntriesPerBlock(LUO_SESSION_SER_SIZE);

/** `LIVEUPDATE_HNDL_COMPAT_LENGTH`: a handler compatible is at most 47 bytes plus its NUL. */
export const LIVEUPDATE_HNDL_COMPAT_LENGTH = 48;

/** `struct luo_file_ser`. */
export const LUO_FILE_SER_SIZE = 64;
/** `luo_file_ser.compatible` (char[48]). */
export const LUO_FILE_SER_COMPATIBLE_OFFSET = 0;
/** `luo_file_ser.data` (u64): the handler's handle. */
export const LUO_FILE_SER_DATA_OFFSET = 48;
/** `luo_file_ser.token` (u64): the user's token. */
export const LUO_FILE_SER_TOKEN_OFFSET = 56;
/** Files per 4 KiB serialization block: (4096 - 16) / 64 = 63. */
export const LUO_FILES_PER_BLOCK = khoBlockEntriesPerBlock(LUO_FILE_SER_SIZE);

/** `LIVEUPDATE_FLB_COMPAT_LENGTH`: an FLB compatible is at most 47 bytes plus its NUL. */
export const LIVEUPDATE_FLB_COMPAT_LENGTH = 48;
/** `struct luo_flb_header_ser`. */
export const LUO_FLB_HEADER_SER_SIZE = 16;
/** `luo_flb_header_ser.pgcnt` (u64) = 1. */
export const LUO_FLB_HEADER_PGCNT_OFFSET = 0;
/** `luo_flb_header_ser.count` (u64): entries that follow. */
export const LUO_FLB_HEADER_COUNT_OFFSET = 8;
/** `struct luo_flb_ser`. */
export const LUO_FLB_SER_SIZE = 64;
/** `luo_flb_ser.name` (char[48]). */
export const LUO_FLB_SER_NAME_OFFSET = 0;
/** `luo_flb_ser.data` (u64): the FLB's handle. */
export const LUO_FLB_SER_DATA_OFFSET = 48;
/** `luo_flb_ser.count` (u64): files that used it. */
export const LUO_FLB_SER_COUNT_OFFSET = 56;
/** `LUO_FLB_PGCNT`: the FLB array is one page. */
export const LUO_FLB_PGCNT = 1;
/** `LUO_FLB_MAX`: (4096 - 16) / 64 = 63 FLBs fit the page (and may be registered at all). */
export const LUO_FLB_MAX = Math.floor((LUO_FLB_PGCNT * PAGE_SIZE - LUO_FLB_HEADER_SER_SIZE) / LUO_FLB_SER_SIZE);

/** `struct kho_block_header_ser` size, for readers of the chains above. */
export const LUO_BLOCK_HEADER_SIZE = KHO_BLOCK_HEADER_SIZE;

/** `FormatError.format` of the `luo_ser` blob (the names the model's errors use for LUO structures). */
export const LUO_FORMAT = "luo";
/** `FormatError.format` of session records and chains. */
export const LUO_SESSION_FORMAT = "luo-session";
/** `FormatError.format` of file records and chains. */
export const LUO_FILE_FORMAT = "luo-file";
/** `FormatError.format` of the FLB page. */
export const LUO_FLB_FORMAT = "luo-flb";

// ---- uAPI (`include/uapi/linux/liveupdate.h`) ---------------------------------------------

/** The ioctl type of `/dev/liveupdate` and its session files. */
export const LIVEUPDATE_IOCTL_TYPE = 0xba;
/** First command number of the device. */
export const LIVEUPDATE_CMD_BASE = 0x00;
/** Device command: create a session. */
export const LIVEUPDATE_CMD_CREATE_SESSION = 0x00;
/** Device command: retrieve a session. */
export const LIVEUPDATE_CMD_RETRIEVE_SESSION = 0x01;
/** First command number of a session file. */
export const LIVEUPDATE_CMD_SESSION_BASE = 0x40;
/** Session command: preserve a file. */
export const LIVEUPDATE_CMD_SESSION_PRESERVE_FD = 0x40;
/** Session command: retrieve a file. */
export const LIVEUPDATE_CMD_SESSION_RETRIEVE_FD = 0x41;
/** Session command: finish. */
export const LIVEUPDATE_CMD_SESSION_FINISH = 0x42;
/** Session command: get the name. */
export const LIVEUPDATE_CMD_SESSION_GET_NAME = 0x43;

/**
 * `_IOC(dir, type, nr, size)` of `asm-generic/ioctl.h`: `dir << 30 | size << 16 | type << 8 | nr`.
 * The liveupdate requests are `_IO` (dir 0, size 0), so each is just `0xBA00 | nr`.
 */
export function ioc(dir: number, type: number, nr: number, size: number): number {
  return ((dir << 30) | (size << 16) | (type << 8) | nr) >>> 0;
}

/** `_IO(type, nr)`. */
export function io(type: number, nr: number): number {
  return ioc(0, type, nr, 0);
}

/** `LIVEUPDATE_IOCTL_CREATE_SESSION` = `_IO(0xBA, 0x00)` = 0xBA00. */
export const LIVEUPDATE_IOCTL_CREATE_SESSION = io(LIVEUPDATE_IOCTL_TYPE, LIVEUPDATE_CMD_CREATE_SESSION);
/** `LIVEUPDATE_IOCTL_RETRIEVE_SESSION` = 0xBA01. */
export const LIVEUPDATE_IOCTL_RETRIEVE_SESSION = io(LIVEUPDATE_IOCTL_TYPE, LIVEUPDATE_CMD_RETRIEVE_SESSION);
/** `LIVEUPDATE_SESSION_PRESERVE_FD` = 0xBA40. */
export const LIVEUPDATE_SESSION_PRESERVE_FD = io(LIVEUPDATE_IOCTL_TYPE, LIVEUPDATE_CMD_SESSION_PRESERVE_FD);
/** `LIVEUPDATE_SESSION_RETRIEVE_FD` = 0xBA41. */
export const LIVEUPDATE_SESSION_RETRIEVE_FD = io(LIVEUPDATE_IOCTL_TYPE, LIVEUPDATE_CMD_SESSION_RETRIEVE_FD);
/** `LIVEUPDATE_SESSION_FINISH` = 0xBA42. */
export const LIVEUPDATE_SESSION_FINISH = io(LIVEUPDATE_IOCTL_TYPE, LIVEUPDATE_CMD_SESSION_FINISH);
/** `LIVEUPDATE_SESSION_GET_NAME` = 0xBA43. */
export const LIVEUPDATE_SESSION_GET_NAME = io(LIVEUPDATE_IOCTL_TYPE, LIVEUPDATE_CMD_SESSION_GET_NAME);

/** `struct liveupdate_ioctl_create_session` / `_retrieve_session`: u32 size, s32 fd, u8 name[64]. */
export const LIVEUPDATE_IOCTL_SESSION_ARG_SIZE = 72;
/** `struct liveupdate_session_preserve_fd` / `_retrieve_fd`: u32 size, s32 fd, u64 token. */
export const LIVEUPDATE_SESSION_FD_ARG_SIZE = 16;
/** `struct liveupdate_session_finish`: u32 size, u32 reserved. */
export const LIVEUPDATE_SESSION_FINISH_ARG_SIZE = 8;
/** `struct liveupdate_session_get_name`: u32 size, u32 reserved, u8 name[64]. */
export const LIVEUPDATE_SESSION_GET_NAME_ARG_SIZE = 72;
