#!/usr/bin/python3
"""Sequential-write oracle: replays call sequences through Debian's python3-libfdt (1.6.1).

One process for all cases: one JSON case per stdin line, one JSON result per stdout line.

Case:   {"mode": "fixed" | "grow", "size": int, "flags": int, "ops": [op, ...]}
Ops:    ["rsv", addr_dec, size_dec] ["frsv"] ["begin", name] ["prop", name, value_hex]
        ["str", name, value] ["u32", name, int] ["u64", name, dec] ["end"]
        ["resize", int] ["finish"] ["boot", int]
Result: {"codes": [0 or -FDT_ERR_x per op], "create": code, "buf": hex}

mode "fixed": libfdt's C calls on a bytearray of exactly `size` bytes (fdt_create_with_flags,
fdt_resize into a fresh zeroed bytearray, ...); "buf" is the whole final buffer.
mode "grow": pylibfdt's FdtSw class (grows by 1024 bytes on NOSPACE and retries), with the
create flags applied by re-creating its buffer; "finish" runs fdt_finish on FdtSw's own buffer
(growing on NOSPACE), so later calls see the finished state; "buf" is the finished blob
(totalsize bytes), or "" if nothing finished.

A name longer than the strings room (size_dt_strings + strlen + 1 > totalsize) makes libfdt
1.6.1 write out of bounds; such a call is not made and reported as code 1000.
"""
import json
import sys

import libfdt as L

UB = 1000
NOSPACE = -L.NOSPACE


def ub_string(buf, name):
    # fdt_add_string_ in unsigned arithmetic: only reachable when the name is not found.
    return L.fdt_size_dt_strings(buf) + len(name.encode()) + 1 > L.fdt_totalsize(buf)


def run_fixed(case):
    size = case["size"]
    buf = bytearray(max(size, 0))
    create = L.fdt_create_with_flags(buf, size, case["flags"])
    codes = []
    if create != 0:
        return {"create": create, "codes": codes, "buf": ""}
    for op in case["ops"]:
        kind = op[0]
        if kind in ("prop", "str", "u32", "u64") and L.fdt_magic(buf) == 0x2FF20112 \
                and L.fdt_off_dt_strings(buf) == L.fdt_totalsize(buf) and ub_string(buf, op[1]):
            codes.append(UB)
            continue
        if kind == "rsv":
            rc = L.fdt_add_reservemap_entry(buf, int(op[1]), int(op[2]))
        elif kind == "frsv":
            rc = L.fdt_finish_reservemap(buf)
        elif kind == "begin":
            rc = L.fdt_begin_node(buf, op[1])
        elif kind == "prop":
            val = bytes.fromhex(op[2])
            rc = L.fdt_property_stub(buf, op[1], val, len(val))
        elif kind == "str":
            rc = L.fdt_property_string(buf, op[1], op[2])
        elif kind == "u32":
            rc = L.fdt_property_u32(buf, op[1], op[2])
        elif kind == "u64":
            rc = L.fdt_property_u64(buf, op[1], int(op[2]))
        elif kind == "end":
            rc = L.fdt_end_node(buf)
        elif kind == "resize":
            new = bytearray(op[1])
            rc = L.fdt_resize(buf, new, op[1])
            if rc == 0:
                buf = new
        elif kind == "finish":
            rc = L.fdt_finish(buf)
        elif kind == "boot":
            L.fdt_set_boot_cpuid_phys(buf, op[1])
            rc = 0
        else:
            raise ValueError("unknown op " + kind)
        codes.append(rc)
    return {"create": 0, "codes": codes, "buf": bytes(buf).hex()}


def run_grow(case):
    sw = L.FdtSw(case["size"])
    create = L.fdt_create_with_flags(sw._fdt, len(sw._fdt), case["flags"])
    codes = []
    if create != 0:
        return {"create": create, "codes": codes, "buf": ""}
    finished = False
    for op in case["ops"]:
        kind = op[0]
        try:
            if kind == "rsv":
                sw.add_reservemap_entry(int(op[1]), int(op[2]))
            elif kind == "frsv":
                sw.finish_reservemap()
            elif kind == "begin":
                sw.begin_node(op[1])
            elif kind == "prop":
                sw.property(op[1], bytes.fromhex(op[2]))
            elif kind == "str":
                sw.property_string(op[1], op[2])
            elif kind == "u32":
                sw.property_u32(op[1], op[2])
            elif kind == "u64":
                sw.property_u64(op[1], int(op[2]))
            elif kind == "end":
                sw.end_node()
            elif kind == "finish":
                while True:
                    rc = L.fdt_finish(sw._fdt)
                    if rc != NOSPACE:
                        break
                    sw.resize(len(sw._fdt) + sw.INC_SIZE)
                if rc != 0:
                    raise L.FdtException(rc)
                finished = True
            elif kind == "boot":
                L.fdt_set_boot_cpuid_phys(sw._fdt, op[1])
            else:
                raise ValueError("unknown op " + kind)
            codes.append(0)
        except L.FdtException as e:
            codes.append(e.err)
    blob = bytes(sw._fdt[: L.fdt_totalsize(sw._fdt)]).hex() if finished else ""
    return {"create": 0, "codes": codes, "buf": blob}


def main():
    out = sys.stdout
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        case = json.loads(line)
        result = run_fixed(case) if case["mode"] == "fixed" else run_grow(case)
        out.write(json.dumps(result))
        out.write("\n")
    out.flush()


if __name__ == "__main__":
    main()
