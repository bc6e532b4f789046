#!/usr/bin/python3
"""Read-write oracle: replays edit sequences through Debian's python3-libfdt (1.6.1).

One process for all cases: one JSON case per stdin line, one JSON result per stdout line.

Case:   {"start": {"blob": hex} | {"empty": size}, "ops": [op, ...], "dump": bool}
        "blob": Fdt(blob) (a bytearray copy; fdt_check_header), edited in place;
        "empty": Fdt.create_empty_tree(size).
Ops:    ["resize", size]          Fdt.resize (fdt_open_into into a fresh zeroed bytearray)
        ["pack"]                  Fdt.pack (fdt_pack, then the bytearray is cut to totalsize)
        ["add_subnode", node, name]  -> the new offset
        ["setprop", node, name, hex] ["setprop_u32", node, name, int]
        ["setprop_u64", node, name, dec] ["setprop_str", node, name, str]
        ["delprop", node, name] ["del_node", node] ["set_name", node, name]
        ["appendprop", node, name, hex] ["nop_property", node, name] ["nop_node", node]
        ["add_mem_rsv", addr_dec, size_dec] ["del_mem_rsv", index]
        ["placeholder", node, name, len]            (C fdt_setprop_placeholder via ctypes)
        ["inplace", node, name, hex]                (C fdt_setprop_inplace via ctypes)
        ["inplace_partial", node, name, idx, hex]   (C fdt_setprop_inplace_namelen_partial)
Result: {"start": code, "codes": [result per op], "sha": [sha1 of the whole buffer after
        each op], "buf": hex of the whole final buffer (only with "dump")}

"The whole buffer" is the Fdt object's bytearray: bufsize bytes after resize/create, cut to
totalsize after pack, the blob as given for "blob" starts.
"""
import ctypes
import hashlib
import json
import sys

import libfdt as L

QUIET = tuple(range(1, 20))
C = ctypes.CDLL("libfdt.so.1")


def c_call(fdt, fn, *args):
    # ctypes needs a writable buffer exported from the bytearray; drop it before the
    # bytearray may be resized again.
    buf = (ctypes.c_char * len(fdt._fdt)).from_buffer(fdt._fdt)
    try:
        return fn(buf, *args)
    finally:
        del buf


def name_b(s):
    return s.encode("utf-8")


def run_op(fdt, op):
    kind = op[0]
    if kind == "resize":
        return fdt.resize(op[1], quiet=QUIET) or 0
    if kind == "pack":
        return fdt.pack(quiet=QUIET) or 0
    if kind == "add_subnode":
        return fdt.add_subnode(op[1], op[2], quiet=QUIET)
    if kind == "setprop":
        return fdt.setprop(op[1], op[2], bytes.fromhex(op[3]), quiet=QUIET)
    if kind == "setprop_u32":
        return fdt.setprop_u32(op[1], op[2], op[3], quiet=QUIET)
    if kind == "setprop_u64":
        return fdt.setprop_u64(op[1], op[2], int(op[3]), quiet=QUIET)
    if kind == "setprop_str":
        return fdt.setprop_str(op[1], op[2], op[3], quiet=QUIET)
    if kind == "delprop":
        return fdt.delprop(op[1], op[2], quiet=QUIET)
    if kind == "del_node":
        return fdt.del_node(op[1], quiet=QUIET)
    if kind == "set_name":
        return fdt.set_name(op[1], op[2], quiet=QUIET)
    if kind == "appendprop":
        val = bytes.fromhex(op[3])
        return L.fdt_appendprop(fdt._fdt, op[1], op[2], val, len(val))
    if kind == "nop_property":
        return L.fdt_nop_property(fdt._fdt, op[1], op[2])
    if kind == "nop_node":
        return L.fdt_nop_node(fdt._fdt, op[1])
    if kind == "add_mem_rsv":
        return L.fdt_add_mem_rsv(fdt._fdt, int(op[1]), int(op[2]))
    if kind == "del_mem_rsv":
        return L.fdt_del_mem_rsv(fdt._fdt, op[1])
    if kind == "placeholder":
        out = ctypes.c_void_p()
        return c_call(fdt, C.fdt_setprop_placeholder, op[1], name_b(op[2]), op[3], ctypes.byref(out))
    if kind == "inplace":
        val = bytes.fromhex(op[3])
        return c_call(fdt, C.fdt_setprop_inplace, op[1], name_b(op[2]), val, len(val))
    if kind == "inplace_partial":
        val = bytes.fromhex(op[4])
        n = name_b(op[2])
        return c_call(fdt, C.fdt_setprop_inplace_namelen_partial, op[1], n, len(n),
                      ctypes.c_uint32(op[3]), val, len(val))
    raise ValueError("unknown op " + kind)


def run_case(case):
    start = case["start"]
    if "empty" in start:
        fdt = L.Fdt.create_empty_tree(start["empty"], quiet=QUIET)
        if isinstance(fdt, int):
            return {"start": fdt, "codes": [], "sha": []}
    else:
        try:
            fdt = L.Fdt(bytes.fromhex(start["blob"]))
        except L.FdtException as e:
            return {"start": e.err, "codes": [], "sha": []}
    codes, shas = [], []
    for op in case["ops"]:
        rc = run_op(fdt, op)
        codes.append(0 if rc is None else rc)
        shas.append(hashlib.sha1(fdt._fdt).hexdigest())
    out = {"start": 0, "codes": codes, "sha": shas}
    if case.get("dump"):
        out["buf"] = bytes(fdt._fdt).hex()
    return out


def main():
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        sys.stdout.write(json.dumps(run_case(json.loads(line))) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
