/*
 * Test oracle: libfdt's fdt_check_full() as the installed libfdt (Debian: 1.6.1) computes it.
 *
 * Built once per test run by check-oracle.ts with `cc -O2 check-oracle.c -lfdt`.
 *
 *   check-oracle check            reads file paths from stdin, one per line, and prints
 *                                 fdt_check_full(blob, file size) for each, one per line:
 *                                 the return value, or `hang` when the call had not returned
 *                                 after HANG_MICROSECONDS of CPU time (the largest real blob
 *                                 takes ~0.2 ms; 1.6.1 loops forever on a property whose
 *                                 length wraps the offset back onto its own tag), or `crash`
 *                                 on SIGSEGV/SIGBUS.
 *
 * Blobs are copied into a zeroed, 8-aligned buffer at least HEADER_PAD bytes long plus
 * TAIL_PAD zero bytes: libfdt reads header fields past a short bufsize, and a property's
 * nameoff past the struct block when its length wraps to a small span; the padding keeps
 * those reads inside memory we own and makes them read zero, as check-libfdt.ts assumes.
 */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <libfdt.h>

#define HEADER_PAD 64
#define TAIL_PAD 16
/* CPU time, so a loaded machine does not turn a slow call into a "hang". */
#define HANG_MICROSECONDS 250000

static sigjmp_buf escape;

/* Jumps out of a libfdt call that hangs (SIGVTALRM) or faults (SIGSEGV, SIGBUS). */
static void on_signal(int sig)
{
	siglongjmp(escape, sig);
}

static void *read_blob(const char *path, size_t *size)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	if (fseek(f, 0, SEEK_END) != 0) {
		fclose(f);
		return NULL;
	}
	long n = ftell(f);
	rewind(f);
	if (n < 0) {
		fclose(f);
		return NULL;
	}
	size_t cap = ((size_t)n < HEADER_PAD ? HEADER_PAD : (size_t)n) + TAIL_PAD;
	void *buf = NULL;
	if (posix_memalign(&buf, 8, cap) != 0) {
		fclose(f);
		return NULL;
	}
	memset(buf, 0, cap);
	if (fread(buf, 1, (size_t)n, f) != (size_t)n) {
		free(buf);
		fclose(f);
		return NULL;
	}
	fclose(f);
	*size = (size_t)n;
	return buf;
}

static int run_check(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGVTALRM, &sa, NULL) != 0 || sigaction(SIGSEGV, &sa, NULL) != 0 ||
	    sigaction(SIGBUS, &sa, NULL) != 0)
		return 2;
	char line[4096];
	while (fgets(line, sizeof line, stdin)) {
		size_t len = strlen(line);
		while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
			line[--len] = '\0';
		if (!len)
			continue;
		size_t size = 0;
		void *blob = read_blob(line, &size);
		if (!blob) {
			fprintf(stderr, "cannot read %s: %s\n", line, strerror(errno));
			return 2;
		}
		struct itimerval limit = { .it_value = { .tv_usec = HANG_MICROSECONDS } };
		struct itimerval off = { 0 };
		int sig = sigsetjmp(escape, 1);
		if (sig == 0) {
			setitimer(ITIMER_VIRTUAL, &limit, NULL);
			int rc = fdt_check_full(blob, size);
			setitimer(ITIMER_VIRTUAL, &off, NULL);
			printf("%d\n", rc);
		} else {
			setitimer(ITIMER_VIRTUAL, &off, NULL);
			printf("%s\n", sig == SIGVTALRM ? "hang" : "crash");
		}
		free(blob);
	}
	return fflush(stdout) == 0 ? 0 : 2;
}

int main(int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "check") == 0)
		return run_check();
	fprintf(stderr, "usage: %s check < paths\n", argv[0]);
	return 2;
}
