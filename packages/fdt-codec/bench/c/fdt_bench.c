/*
 * fdt_bench: the C baseline for `pnpm bench` (bench/run.mjs), timing Debian's libfdt on the
 * same blobs the TypeScript codec is timed on.
 *
 * Built by run.mjs:  cc -O2 -o node_modules/.cache/fdt-bench/fdt_bench bench/c/fdt_bench.c -lfdt
 *
 * Usage:
 *   fdt_bench probe <blob>...
 *       One JSON line per blob: size, fdt_check_full verdict, node/property counts, and the
 *       sequential-write replay of its tree (exact output size, FNV-1a 32 of the output) so
 *       the TS side can use the same buffer size and compare bytes.
 *   fdt_bench serve
 *       The same measurements one sample at a time, driven over stdin (see serve() below):
 *       run.mjs uses it to alternate C and TS samples.
 *   fdt_bench bench [--target-ms N] [--reps R] <group>...
 *       <group> is `name=path` (one blob) or `name=@listfile` (one path per line; one
 *       operation = one pass over every blob in the list, i.e. the sum of the per-blob times).
 *       For each group and each row, one JSON line with the median ns per operation.
 *
 * Rows:
 *   a  fdt_check_full + a tag walk touching every property (name offset, value pointer, length)
 *   b  sequential write (fdt_create .. fdt_finish) of the blob's tree, replayed from a flat call
 *      list extracted before timing, into a preallocated buffer of exactly the output size
 *
 * Timing: clock_gettime(CLOCK_MONOTONIC). Iteration count is calibrated so that one sample takes
 * about --target-ms; --reps samples are taken and the median is reported. Every result is folded
 * into a volatile sink so the compiler cannot drop the work.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <libfdt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static volatile uint64_t sink;

/* ---- small utilities -------------------------------------------------------------------- */

static void die(const char *what, const char *detail)
{
	fprintf(stderr, "fdt_bench: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
	exit(2);
}

static void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p)
		die("out of memory", NULL);
	return p;
}

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint32_t fnv1a32(const uint8_t *p, size_t n)
{
	uint32_t h = 0x811c9dc5u;
	for (size_t i = 0; i < n; i++) {
		h ^= p[i];
		h *= 0x01000193u;
	}
	return h;
}

/* JSON string output: paths are plain, but escape the few characters JSON requires. */
static void put_json_string(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			printf("\\%c", c);
		else if (c < 0x20)
			printf("\\u%04x", c);
		else
			putchar(c);
	}
	putchar('"');
}

/* ---- one blob and its sequential-write call list ---------------------------------------- */

enum call_kind { CALL_BEGIN_NODE, CALL_PROPERTY, CALL_END_NODE };

/* One fdt_sw call; name and value point into the source blob (already in memory). */
struct call {
	enum call_kind kind;
	const char *name;
	const void *value;
	int len;
};

struct blob {
	const char *path;
	uint8_t *bytes;
	size_t size;
	int check; /* fdt_check_full verdict */
	int nodes, props;
	struct call *calls;
	int ncalls;
	uint64_t *rsv; /* address, size pairs */
	int nrsv;
	uint8_t *swbuf; /* preallocated output buffer for row b */
	int swsize;	/* exact output size (totalsize after fdt_finish) */
	int swrc;	/* 0, or the first libfdt error of the replay */
	uint32_t swhash;
};

static void read_blob(struct blob *b, const char *path)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		die("cannot open", path);
	if (fseek(f, 0, SEEK_END) != 0)
		die("cannot seek", path);
	long n = ftell(f);
	if (n < 0)
		die("cannot size", path);
	rewind(f);
	memset(b, 0, sizeof(*b));
	b->path = path;
	b->size = (size_t)n;
	b->bytes = xmalloc(b->size);
	if (b->size && fread(b->bytes, 1, b->size, f) != b->size)
		die("short read", path);
	fclose(f);
	b->check = fdt_check_full(b->bytes, b->size);
}

/*
 * Every tag takes at least 4 bytes and lies between off_dt_struct and totalsize, which bounds
 * any tag loop. (size_dt_struct would be tighter but reads 0 before version 17.)
 */
static int struct_tag_limit(const void *fdt)
{
	return (int)((fdt_totalsize(fdt) - fdt_off_dt_struct(fdt)) / 4) + 1;
}

/*
 * Flatten the struct block into fdt_sw calls (NOPs dropped). Only done for blobs that
 * fdt_check_full accepted, so every offset below is valid; the loop is still bounded by the
 * struct size in case of a library surprise.
 */
static void extract_calls(struct blob *b)
{
	const void *fdt = b->bytes;
	int cap = struct_tag_limit(fdt);
	b->calls = xmalloc((size_t)cap * sizeof(struct call));
	b->ncalls = 0;
	int off = 0, next = 0;
	for (int guard = 0; guard < cap; guard++) {
		uint32_t tag = fdt_next_tag(fdt, off, &next);
		if (tag == FDT_END || next < 0)
			break;
		struct call *c = &b->calls[b->ncalls];
		if (tag == FDT_BEGIN_NODE) {
			int len;
			c->kind = CALL_BEGIN_NODE;
			c->name = fdt_get_name(fdt, off, &len);
			if (!c->name)
				die("fdt_get_name failed", b->path);
			b->ncalls++;
			b->nodes++;
		} else if (tag == FDT_PROP) {
			/* fdt_getprop_by_offset also handles the 8-aligned values of versions < 16. */
			c->kind = CALL_PROPERTY;
			c->value = fdt_getprop_by_offset(fdt, off, &c->name, &c->len);
			if (!c->value || !c->name)
				die("fdt_getprop_by_offset failed", b->path);
			b->ncalls++;
			b->props++;
		} else if (tag == FDT_END_NODE) {
			c->kind = CALL_END_NODE;
			b->ncalls++;
		}
		off = next;
	}
	b->nrsv = fdt_num_mem_rsv(fdt);
	if (b->nrsv < 0)
		die("fdt_num_mem_rsv failed", b->path);
	b->rsv = xmalloc((size_t)b->nrsv * 2 * sizeof(uint64_t) + 1);
	for (int i = 0; i < b->nrsv; i++)
		if (fdt_get_mem_rsv(fdt, i, &b->rsv[2 * i], &b->rsv[2 * i + 1]) != 0)
			die("fdt_get_mem_rsv failed", b->path);
}

/* ---- row a: check + walk ---------------------------------------------------------------- */

static uint64_t check_and_walk(const struct blob *b)
{
	const void *fdt = b->bytes;
	uint64_t acc = (uint64_t)fdt_check_full(fdt, b->size);
	int modern = fdt_version(fdt) >= 16;
	int off = 0, next = 0;
	int limit = struct_tag_limit(fdt);
	for (int guard = 0; guard < limit; guard++) {
		uint32_t tag = fdt_next_tag(fdt, off, &next);
		if (tag == FDT_END || next < 0)
			break;
		if (tag == FDT_PROP) {
			int len;
			if (modern) {
				const struct fdt_property *p = fdt_get_property_by_offset(fdt, off, &len);
				acc += fdt32_to_cpu(p->nameoff) + (uint64_t)len + (uint64_t)(uintptr_t)p->data;
			} else {
				/* Before version 16 values may be realigned: only getprop knows where. */
				const char *name;
				const void *data = fdt_getprop_by_offset(fdt, off, &name, &len);
				acc += (uint64_t)(uintptr_t)name + (uint64_t)len + (uint64_t)(uintptr_t)data;
			}
		}
		off = next;
	}
	return acc;
}

/* ---- row b: sequential write ------------------------------------------------------------ */

/* Replay the call list into buf; returns 0 or the first negative libfdt error. */
static int sequential_write(const struct blob *b, void *buf, int bufsize)
{
	int rc = fdt_create(buf, bufsize);
	for (int i = 0; rc == 0 && i < b->nrsv; i++)
		rc = fdt_add_reservemap_entry(buf, b->rsv[2 * i], b->rsv[2 * i + 1]);
	if (rc == 0)
		rc = fdt_finish_reservemap(buf);
	for (int i = 0; rc == 0 && i < b->ncalls; i++) {
		const struct call *c = &b->calls[i];
		switch (c->kind) {
		case CALL_BEGIN_NODE:
			rc = fdt_begin_node(buf, c->name);
			break;
		case CALL_PROPERTY:
			rc = fdt_property(buf, c->name, c->value, c->len);
			break;
		case CALL_END_NODE:
			rc = fdt_end_node(buf);
			break;
		}
	}
	if (rc == 0)
		rc = fdt_finish(buf);
	return rc;
}

/* Find the exact output size with a generous buffer, then keep a buffer of exactly that size. */
static void prepare_sequential_write(struct blob *b)
{
	int big = (int)b->size * 2 + 4096 + b->nrsv * 16;
	uint8_t *tmp = xmalloc((size_t)big);
	b->swrc = sequential_write(b, tmp, big);
	if (b->swrc == 0) {
		b->swsize = (int)fdt_totalsize(tmp);
		b->swbuf = xmalloc((size_t)b->swsize);
		int rc = sequential_write(b, b->swbuf, b->swsize);
		if (rc != 0 || memcmp(tmp, b->swbuf, (size_t)b->swsize) != 0)
			die("sequential write is not reproducible in an exact-size buffer", b->path);
		b->swhash = fnv1a32(b->swbuf, (size_t)b->swsize);
	}
	free(tmp);
}

/* ---- timing ----------------------------------------------------------------------------- */

struct group {
	char *name;
	struct blob *blobs;
	int nblobs;
	size_t bytes;
};

typedef uint64_t (*op_fn)(const struct group *g);

static uint64_t op_check_walk(const struct group *g)
{
	uint64_t acc = 0;
	for (int i = 0; i < g->nblobs; i++)
		acc += check_and_walk(&g->blobs[i]);
	return acc;
}

static uint64_t op_sequential_write(const struct group *g)
{
	uint64_t acc = 0;
	for (int i = 0; i < g->nblobs; i++) {
		const struct blob *b = &g->blobs[i];
		if (sequential_write(b, b->swbuf, b->swsize) != 0)
			die("sequential write failed during timing", b->path);
		acc += fdt_totalsize(b->swbuf);
	}
	return acc;
}

static int cmp_double(const void *x, const void *y)
{
	double a = *(const double *)x, b = *(const double *)y;
	return (a > b) - (a < b);
}

static uint64_t run_iters(op_fn fn, const struct group *g, uint64_t iters)
{
	uint64_t t0 = now_ns();
	for (uint64_t i = 0; i < iters; i++)
		sink += fn(g);
	return now_ns() - t0;
}

/* Iterations for one sample of about target_ms: double until a run takes >= 1/8 of it, then scale. */
static uint64_t calibrate(op_fn fn, const struct group *g, double target_ms)
{
	uint64_t target_ns = (uint64_t)(target_ms * 1e6);
	uint64_t iters = 1, elapsed;
	for (;;) {
		elapsed = run_iters(fn, g, iters);
		if (elapsed >= target_ns / 8 || iters >= (1ull << 40))
			break;
		iters *= 2;
	}
	double per_op = (double)elapsed / (double)iters;
	uint64_t n = (uint64_t)((double)target_ns / (per_op > 1 ? per_op : 1));
	return n < 1 ? 1 : n;
}

static double sample(op_fn fn, const struct group *g, uint64_t iters)
{
	return (double)run_iters(fn, g, iters) / (double)iters;
}

static void time_row(const char *row, op_fn fn, const struct group *g, double target_ms, int reps)
{
	uint64_t n = calibrate(fn, g, target_ms);
	double *samples = xmalloc((size_t)reps * sizeof(double));
	for (int r = 0; r < reps; r++)
		samples[r] = sample(fn, g, n);
	double *sorted = xmalloc((size_t)reps * sizeof(double));
	memcpy(sorted, samples, (size_t)reps * sizeof(double));
	qsort(sorted, (size_t)reps, sizeof(double), cmp_double);
	double median = reps % 2 ? sorted[reps / 2] : (sorted[reps / 2 - 1] + sorted[reps / 2]) / 2;

	printf("{\"kind\":\"row\",\"group\":");
	put_json_string(g->name);
	printf(",\"row\":\"%s\",\"nsPerOp\":%.1f,\"iters\":%llu,\"blobs\":%d,\"bytes\":%zu,\"samples\":[",
	       row, median, (unsigned long long)n, g->nblobs, g->bytes);
	for (int r = 0; r < reps; r++)
		printf("%s%.1f", r ? "," : "", samples[r]);
	printf("]}\n");
	fflush(stdout);
	free(samples);
	free(sorted);
}

/* ---- groups ----------------------------------------------------------------------------- */

static char **read_list(const char *listfile, int *count)
{
	FILE *f = fopen(listfile, "r");
	if (!f)
		die("cannot open list", listfile);
	int cap = 64, n = 0;
	char **paths = xmalloc((size_t)cap * sizeof(char *));
	char *line = NULL;
	size_t linecap = 0;
	ssize_t len;
	while ((len = getline(&line, &linecap, f)) >= 0) {
		while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
			line[--len] = '\0';
		if (len == 0)
			continue;
		if (n == cap) {
			cap *= 2;
			paths = realloc(paths, (size_t)cap * sizeof(char *));
			if (!paths)
				die("out of memory", NULL);
		}
		paths[n++] = strdup(line);
	}
	free(line);
	fclose(f);
	*count = n;
	return paths;
}

static void load_group(struct group *g, const char *spec)
{
	const char *eq = strchr(spec, '=');
	if (!eq)
		die("a group is name=path or name=@listfile", spec);
	g->name = strndup(spec, (size_t)(eq - spec));
	const char *what = eq + 1;
	char **paths;
	int n;
	if (what[0] == '@') {
		paths = read_list(what + 1, &n);
	} else {
		n = 1;
		paths = xmalloc(sizeof(char *));
		paths[0] = strdup(what);
	}
	g->blobs = xmalloc((size_t)n * sizeof(struct blob));
	g->nblobs = n;
	g->bytes = 0;
	for (int i = 0; i < n; i++) {
		struct blob *b = &g->blobs[i];
		read_blob(b, paths[i]);
		if (b->check != 0)
			die("fdt_check_full rejects a blob given to bench (probe first)", b->path);
		extract_calls(b);
		prepare_sequential_write(b);
		if (b->swrc != 0)
			die("sequential write of a blob given to bench fails", b->path);
		g->bytes += b->size;
	}
	free(paths);
}

/* ---- main ------------------------------------------------------------------------------- */

static int probe(int argc, char **argv)
{
	for (int i = 0; i < argc; i++) {
		struct blob b;
		read_blob(&b, argv[i]);
		printf("{\"kind\":\"probe\",\"path\":");
		put_json_string(b.path);
		printf(",\"size\":%zu,\"check\":%d", b.size, b.check);
		if (b.check == 0) {
			extract_calls(&b);
			prepare_sequential_write(&b);
			printf(",\"nodes\":%d,\"props\":%d,\"rsv\":%d,\"swRc\":%d", b.nodes, b.props, b.nrsv, b.swrc);
			if (b.swrc == 0)
				printf(",\"swSize\":%d,\"swHash\":%u", b.swsize, b.swhash);
		}
		printf("}\n");
	}
	return 0;
}

/*
 * serve: the protocol run.mjs uses to interleave C and TS samples (so both sides are measured
 * under the same machine load). One command per stdin line, one JSON line back per command:
 *   load <name=path|name=@list>      -> {"kind":"loaded","group":..,"index":i,"blobs":n,"bytes":n}
 *   calibrate <i> <a|b> <target-ms>  -> {"kind":"calibrated","iters":n}
 *   sample <i> <a|b> <iters>         -> {"kind":"sample","nsPerOp":x}
 *   quit
 */
static op_fn row_fn(const char *row)
{
	if (strcmp(row, "a") == 0)
		return op_check_walk;
	if (strcmp(row, "b") == 0)
		return op_sequential_write;
	die("unknown row", row);
	return NULL;
}

static int serve(void)
{
	struct group *groups = NULL;
	int ngroups = 0;
	char *line = NULL;
	size_t linecap = 0;
	ssize_t len;
	while ((len = getline(&line, &linecap, stdin)) >= 0) {
		while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
			line[--len] = '\0';
		char cmd[16], row[8], arg[4096];
		int index;
		if (strncmp(line, "load ", 5) == 0) {
			groups = realloc(groups, (size_t)(ngroups + 1) * sizeof(struct group));
			if (!groups)
				die("out of memory", NULL);
			struct group *g = &groups[ngroups];
			load_group(g, line + 5);
			printf("{\"kind\":\"loaded\",\"group\":");
			put_json_string(g->name);
			printf(",\"index\":%d,\"blobs\":%d,\"bytes\":%zu}\n", ngroups, g->nblobs, g->bytes);
			ngroups++;
		} else if (sscanf(line, "%15s %d %7s %4095s", cmd, &index, row, arg) == 4 && index >= 0 &&
			   index < ngroups) {
			if (strcmp(cmd, "calibrate") == 0) {
				uint64_t n = calibrate(row_fn(row), &groups[index], atof(arg));
				printf("{\"kind\":\"calibrated\",\"iters\":%llu}\n", (unsigned long long)n);
			} else if (strcmp(cmd, "sample") == 0) {
				uint64_t n = strtoull(arg, NULL, 10);
				printf("{\"kind\":\"sample\",\"nsPerOp\":%.1f}\n", sample(row_fn(row), &groups[index], n ? n : 1));
			} else {
				die("unknown command", line);
			}
		} else if (strcmp(line, "quit") == 0) {
			break;
		} else {
			die("bad command", line);
		}
		fflush(stdout);
	}
	free(line);
	fprintf(stderr, "fdt_bench: sink %llu\n", (unsigned long long)sink);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 2)
		die("usage: fdt_bench probe <blob>... | fdt_bench bench [--target-ms N] [--reps R] <name=path|name=@list>... | fdt_bench serve", NULL);
	if (strcmp(argv[1], "probe") == 0)
		return probe(argc - 2, argv + 2);
	if (strcmp(argv[1], "serve") == 0)
		return serve();
	if (strcmp(argv[1], "bench") != 0)
		die("unknown mode", argv[1]);

	double target_ms = 150;
	int reps = 5;
	int i = 2;
	for (; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
		if (strcmp(argv[i], "--target-ms") == 0 && i + 1 < argc)
			target_ms = atof(argv[++i]);
		else if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc)
			reps = atoi(argv[++i]);
		else
			die("unknown option", argv[i]);
	}
	if (target_ms <= 0 || reps < 1)
		die("bad --target-ms or --reps", NULL);
	for (; i < argc; i++) {
		struct group g;
		load_group(&g, argv[i]);
		time_row("a", op_check_walk, &g, target_ms, reps);
		time_row("b", op_sequential_write, &g, target_ms, reps);
	}
	fprintf(stderr, "fdt_bench: sink %llu\n", (unsigned long long)sink);
	return 0;
}
