/**
 * A kernel's file descriptor table, as far as `/dev/liveupdate` needs one: numbers for the
 * open files of the one process that drives LUO (the device, session files, the files it
 * preserves and retrieves), lowest free number first (from 3, after stdio), `EBADF` for a
 * number that is not open. When the last descriptor of a file is closed the file is
 * released (`f_op->release`): for the device and session files that is their close.
 */
import { KernelError } from "@liveupdate/kho";
import type { LuoFile } from "./handler.js";

/** The first descriptor handed out (0..2 are stdio). */
export const FIRST_FD = 3;

/** Numbers in a binary min-heap: the lowest closed descriptor is reused first. */
class MinHeap {
  readonly #a: number[] = [];
  get size(): number {
    return this.#a.length;
  }
  push(v: number): void {
    const a = this.#a;
    a.push(v);
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (a[p]! <= v) break;
      a[i] = a[p]!;
      i = p;
    }
    a[i] = v;
  }
  pop(): number | undefined {
    const a = this.#a;
    const top = a[0];
    const last = a.pop();
    if (a.length === 0 || last === undefined) return top;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= a.length) break;
      const r = l + 1;
      const c = r < a.length && a[r]! < a[l]! ? r : l;
      if (a[c]! >= last) break;
      a[i] = a[c]!;
      i = c;
    }
    a[i] = last;
    return top;
  }
}

/** See the module comment. */
export class FdTable {
  readonly #files = new Map<number, LuoFile>();
  readonly #refs = new Map<LuoFile, number>();
  readonly #free = new MinHeap();
  readonly #onRelease: (file: LuoFile) => void;
  #next = FIRST_FD;

  /** `onRelease` runs when the last descriptor of a file is closed. */
  constructor(onRelease: (file: LuoFile) => void = () => undefined) {
    this.#onRelease = onRelease;
  }

  /** Open a descriptor for `file` (the lowest free number) and return it. */
  install(file: LuoFile): number {
    const fd = this.#free.pop() ?? this.#next++;
    this.#files.set(fd, file);
    this.#refs.set(file, (this.#refs.get(file) ?? 0) + 1);
    return fd;
  }

  /** The file open at `fd`. @throws KernelError `EBADF`. */
  get(fd: number): LuoFile {
    const file = this.#files.get(fd);
    if (file === undefined) throw new KernelError("EBADF", `fd ${String(fd)} is not open`);
    return file;
  }

  /** Whether `fd` is open. */
  has(fd: number): boolean {
    return this.#files.has(fd);
  }

  /** Close `fd`; the file's last descriptor releases it. @throws KernelError `EBADF`. */
  close(fd: number): void {
    const file = this.get(fd);
    this.#files.delete(fd);
    this.#free.push(fd);
    const refs = (this.#refs.get(file) ?? 1) - 1;
    if (refs > 0) {
      this.#refs.set(file, refs);
      return;
    }
    this.#refs.delete(file);
    this.#onRelease(file);
  }

  /** Number of open descriptors. */
  get size(): number {
    return this.#files.size;
  }

  /** The open descriptors, ascending. */
  fds(): number[] {
    return [...this.#files.keys()].sort((a, b) => a - b);
  }
}
