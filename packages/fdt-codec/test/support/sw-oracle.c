/*
 * Sequential-write oracle in C, against Debian's libfdt 1.6.1 (-lfdt): for what pylibfdt
 * cannot do (fdt_property_placeholder, names with bytes above 0x7f, negative resize sizes).
 *
 * One process for all cases. Input: a line-based script, one token per field, names and
 * values in hex ("-" when empty):
 *
 *   case <size> <flags>         start a case: fdt_create_with_flags on a zeroed buffer
 *   R <addr-hex> <size-hex>     fdt_add_reservemap_entry (u64 in hex)
 *   F                           fdt_finish_reservemap
 *   B <name>                    fdt_begin_node
 *   P <name> <value>            fdt_property
 *   S <name> <value>            fdt_property_string (value given without its NUL)
 *   U <name> <u32>              fdt_property_u32
 *   Q <name> <u64-hex>          fdt_property_u64
 *   H <name> <len> <fill>       fdt_property_placeholder, then copy <fill> into the value
 *   E                           fdt_end_node
 *   Z <size>                    fdt_resize into a fresh zeroed buffer (kept only on success)
 *   X                           fdt_finish
 *   C <u32>                     fdt_set_boot_cpuid_phys
 *   run                         end of case: print "<create> <code,code,...|-> <buffer-hex|->"
 *
 * A name longer than the strings room (size_dt_strings + strlen + 1 > totalsize, in the struct
 * phase) makes libfdt 1.6.1 write out of bounds; such a call is not made and reported as 1000.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libfdt.h>

#define UB 1000
#define SW_MAGIC 0x2ff20112u /* libfdt's FDT_SW_MAGIC (internal, not in libfdt.h) */

static void die(const char *msg)
{
	fprintf(stderr, "sw-oracle: %s\n", msg);
	exit(2);
}

static void *xcalloc(size_t n)
{
	void *p = calloc(n ? n : 1, 1);
	if (!p)
		die("out of memory");
	return p;
}

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	die("bad hex digit");
	return 0;
}

/* Decode hex (or "-") into a fresh NUL-terminated buffer; *len gets the byte count. */
static char *unhex(const char *s, size_t *len)
{
	size_t n = strcmp(s, "-") == 0 ? 0 : strlen(s) / 2;
	char *out = xcalloc(n + 1);
	for (size_t i = 0; i < n; i++)
		out[i] = (char)(hexval(s[2 * i]) * 16 + hexval(s[2 * i + 1]));
	*len = n;
	return out;
}

static int in_struct_phase(void *fdt)
{
	return fdt_magic(fdt) == SW_MAGIC && fdt_off_dt_strings(fdt) == fdt_totalsize(fdt);
}

static int string_would_overflow(void *fdt, size_t namelen)
{
	return in_struct_phase(fdt) && (size_t)fdt_size_dt_strings(fdt) + namelen + 1 > fdt_totalsize(fdt);
}

int main(void)
{
	static char line[1 << 20];
	char *buf = NULL;
	int bufsize = 0;
	int create = 0;
	int ncodes = 0;
	static int codes[1 << 16];

	while (fgets(line, sizeof line, stdin)) {
		size_t l = strlen(line);
		if (l == sizeof line - 1)
			die("line too long");
		while (l && (line[l - 1] == '\n' || line[l - 1] == '\r'))
			line[--l] = 0;
		if (!l)
			continue;
		char *tok[4] = {0};
		int nt = 0;
		for (char *p = strtok(line, " "); p && nt < 4; p = strtok(NULL, " "))
			tok[nt++] = p;
		const char *op = tok[0];
		if (strcmp(op, "case") == 0) {
			free(buf);
			bufsize = atoi(tok[1]);
			buf = xcalloc(bufsize > 0 ? (size_t)bufsize : 0);
			memset(buf, 0x5a, bufsize > 0 ? (size_t)bufsize : 0); /* fdt_create must clear it */
			create = fdt_create_with_flags(buf, bufsize, (uint32_t)strtoul(tok[2], NULL, 10));
			ncodes = 0;
			continue;
		}
		if (strcmp(op, "run") == 0) {
			printf("%d ", create);
			if (ncodes == 0)
				printf("-");
			for (int i = 0; i < ncodes; i++)
				printf(i ? ",%d" : "%d", codes[i]);
			printf(" ");
			if (create != 0 || bufsize <= 0) {
				printf("-");
			} else {
				for (int i = 0; i < bufsize; i++)
					printf("%02x", (unsigned char)buf[i]);
			}
			printf("\n");
			fflush(stdout);
			continue;
		}
		if (ncodes >= (int)(sizeof codes / sizeof codes[0]))
			die("too many ops");
		if (create != 0)
			continue; /* nothing to call libfdt on: the case is only its create code */
		int rc = 0;
		size_t nlen = 0, vlen = 0;
		char *name = NULL, *val = NULL;
		switch (op[0]) {
		case 'R':
			rc = fdt_add_reservemap_entry(buf, strtoull(tok[1], NULL, 16), strtoull(tok[2], NULL, 16));
			break;
		case 'F':
			rc = fdt_finish_reservemap(buf);
			break;
		case 'B':
			name = unhex(tok[1], &nlen);
			rc = fdt_begin_node(buf, name);
			break;
		case 'P':
		case 'S':
		case 'U':
		case 'Q':
		case 'H':
			name = unhex(tok[1], &nlen);
			if (string_would_overflow(buf, nlen)) {
				rc = UB;
				break;
			}
			if (op[0] == 'P') {
				val = unhex(tok[2], &vlen);
				rc = fdt_property(buf, name, val, (int)vlen);
			} else if (op[0] == 'S') {
				val = unhex(tok[2], &vlen);
				rc = fdt_property_string(buf, name, val);
			} else if (op[0] == 'U') {
				rc = fdt_property_u32(buf, name, (uint32_t)strtoul(tok[2], NULL, 10));
			} else if (op[0] == 'Q') {
				rc = fdt_property_u64(buf, name, strtoull(tok[2], NULL, 16));
			} else {
				void *where = NULL;
				int len = atoi(tok[2]);
				val = unhex(tok[3], &vlen);
				rc = fdt_property_placeholder(buf, name, len, &where);
				if (rc == 0)
					memcpy(where, val, vlen < (size_t)len ? vlen : (size_t)len);
			}
			break;
		case 'E':
			rc = fdt_end_node(buf);
			break;
		case 'Z': {
			int n = atoi(tok[1]);
			char *fresh = xcalloc(n > 0 ? (size_t)n : 0);
			rc = fdt_resize(buf, fresh, n);
			if (rc == 0) {
				free(buf);
				buf = fresh;
				bufsize = n;
			} else {
				free(fresh);
			}
			break;
		}
		case 'X':
			rc = fdt_finish(buf);
			break;
		case 'C':
			fdt_set_boot_cpuid_phys(buf, (uint32_t)strtoul(tok[1], NULL, 10));
			break;
		default:
			die("unknown op");
		}
		free(name);
		free(val);
		codes[ncodes++] = rc;
	}
	free(buf);
	return 0;
}
