/*
 * Test oracle of the reader: libfdt (Debian's 1.6.1) walks each blob and prints every
 * node and property it sees, with libfdt's own iteration and property reads.
 *
 * Built once per test run by reader-oracle.ts with `cc -O2 reader-dump.c -lfdt`.
 * stdin: blob file paths, one per line. stdout, per file:
 *   F <fdt_check_full result>
 *   N <struct offset> <depth> <name as hex>        for each node (fdt_next_node order)
 *   P <struct offset> <name as hex> <value as hex>  for each of its properties
 *                                                   (fdt_first/next_property_offset,
 *                                                    fdt_getprop_by_offset)
 *   E <error>                                       when libfdt fails mid-walk
 * Only blobs fdt_check_full accepts are walked.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <libfdt.h>

static void hex(const void *p, int len)
{
	const unsigned char *b = p;
	if (len == 0)
		putchar('-');
	for (int i = 0; i < len; i++)
		printf("%02x", b[i]);
}

int main(void)
{
	char path[4096];
	while (fgets(path, sizeof path, stdin)) {
		path[strcspn(path, "\n")] = 0;
		FILE *f = fopen(path, "rb");
		if (!f) {
			printf("F open\n");
			continue;
		}
		fseek(f, 0, SEEK_END);
		long n = ftell(f);
		rewind(f);
		void *buf = NULL;
		if (posix_memalign(&buf, 8, n + 64) != 0)
			return 2;
		memset(buf, 0, n + 64);
		if (fread(buf, 1, n, f) != (size_t)n)
			return 2;
		fclose(f);
		int err = fdt_check_full(buf, n);
		printf("F %d\n", err);
		if (err == 0) {
			int depth = 0;
			int node;
			for (node = fdt_next_node(buf, -1, &depth); node >= 0; node = fdt_next_node(buf, node, &depth)) {
				int len;
				const char *name = fdt_get_name(buf, node, &len);
				if (!name) {
					printf("E %d\n", len);
					break;
				}
				printf("N %d %d ", node, depth);
				hex(name, len);
				putchar('\n');
				int prop;
				fdt_for_each_property_offset(prop, buf, node) {
					const char *pname;
					const void *value = fdt_getprop_by_offset(buf, prop, &pname, &len);
					if (!value) {
						printf("E %d\n", len);
						break;
					}
					printf("P %d ", prop);
					hex(pname, strlen(pname));
					putchar(' ');
					hex(value, len);
					putchar('\n');
				}
			}
			if (node != -FDT_ERR_NOTFOUND)
				printf("E %d\n", node);
		}
		free(buf);
	}
	return 0;
}
