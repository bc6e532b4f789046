"""python3-libfdt oracle for the reader tests: one process answers every job.

stdin: JSON list of jobs {file, paths?, phandles?, props?}; stdout: JSON list of answers
{paths, phandles, props}. Offsets are libfdt's (relative to the
structure block); errors are libfdt's negative codes.
"""
import json
import sys

import libfdt

QUIET = [libfdt.NOTFOUND, libfdt.BADPATH, libfdt.BADPHANDLE, libfdt.BADOFFSET,
         libfdt.BADSTRUCTURE, libfdt.TRUNCATED, libfdt.BADVERSION]


def answer(job):
    with open(job["file"], "rb") as f:
        fdt = libfdt.Fdt(f.read())
    out = {"paths": [], "phandles": [], "props": []}
    for path in job.get("paths", []):
        out["paths"].append(fdt.path_offset(path, QUIET))
    for ph in job.get("phandles", []):
        out["phandles"].append(fdt.node_offset_by_phandle(ph, QUIET))
    for path, name in job.get("props", []):
        node = fdt.path_offset(path, QUIET)
        if node < 0:
            out["props"].append(node)
            continue
        value = fdt.getprop(node, name, QUIET)
        out["props"].append(value if isinstance(value, int) else bytes(value).hex())
    return out


json.dump([answer(job) for job in json.load(sys.stdin)], sys.stdout)
