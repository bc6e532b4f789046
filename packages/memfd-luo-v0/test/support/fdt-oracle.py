#!/usr/bin/python3
"""memfd-v0 FDT oracle: the posted series' libfdt calls, replayed through Debian's python3-libfdt.

One JSON case per stdin line, one JSON result per stdout line.

Case:   {"bufsize": int, "props": [[name, value_hex], ...], "setpos": value_hex or null}
Result: {"rc": [codes], "buf": hex of the whole buffer}

On a zeroed bytearray of `bufsize` bytes (the folio): fdt_create, fdt_finish_reservemap,
fdt_begin_node(""), fdt_property(name, value) for each prop, fdt_end_node, fdt_finish; then,
when "setpos" is given, fdt_setprop(fdt, 0, "pos", value) as the posted freeze does.
(The posted variant's fdt_property_placeholder + fill leaves the same bytes as fdt_property
of the filled value on a zeroed buffer.)
"""
import json
import sys

import libfdt as L


def run(case):
    buf = bytearray(case["bufsize"])
    rc = [L.fdt_create(buf, case["bufsize"]), L.fdt_finish_reservemap(buf), L.fdt_begin_node(buf, "")]
    for name, value in case["props"]:
        val = bytes.fromhex(value)
        rc.append(L.fdt_property_stub(buf, name, val, len(val)))
    rc.append(L.fdt_end_node(buf))
    rc.append(L.fdt_finish(buf))
    if case.get("setpos") is not None:
        val = bytes.fromhex(case["setpos"])
        rc.append(L.fdt_setprop(buf, 0, "pos", val, len(val)))
    return {"rc": rc, "buf": bytes(buf).hex()}


def main():
    for line in sys.stdin:
        line = line.strip()
        if line:
            sys.stdout.write(json.dumps(run(json.loads(line))) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
