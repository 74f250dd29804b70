/*
 * zoo_memory — heap growth with brk after restore, a sparse 1 GiB anonymous
 * mapping with a few touched pages, MAP_SHARED anonymous memory shared
 * between threads, dirty private and shared file mappings, mprotect'ed
 * regions (read-only, PROT_NONE with contents, a guard page), mlock and
 * madvise flags; dense regions (every page touched, which the restore may
 * take over whole) keep their bounds, protections, VmFlags and contents.
 */
#include "zoo.h"
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/stat.h>

#define PG 4096UL
#define GIB (1UL << 30)

static uint64_t *shm;                 /* MAP_SHARED anonymous, 1 MiB */
static volatile int stop;

static void *sharer(void *a)
{
	(void)a;
	while (!stop)
		for (int i = 0; i < 1024; i++)
			__atomic_add_fetch(&shm[i * 16], 1, __ATOMIC_RELAXED);
	return NULL;
}

static uint64_t pat(uint64_t a, uint64_t i) { return (a * 0x9e3779b97f4a7c15ULL) ^ i; }

static int vmflag(void *addr, const char *flag)
{
	FILE *f = fopen("/proc/self/smaps", "r");
	char line[512];
	int in = 0, found = 0;
	unsigned long lo, hi, a = (unsigned long)addr;

	while (f && fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 && strchr(line, '-') < strchr(line, ' '))
			in = a >= lo && a < hi;
		else if (in && !strncmp(line, "VmFlags:", 8))
			found = strstr(line, flag) != NULL;
	}
	if (f)
		fclose(f);
	return found;
}

/* the smaps entry of the region holding addr: bounds and VmFlags text */
static int region_of(void *addr, unsigned long *lo, unsigned long *hi, char *flags, size_t cap)
{
	FILE *f = fopen("/proc/self/smaps", "r");
	char line[512];
	int in = 0, found = 0;
	unsigned long l, h, a = (unsigned long)addr;

	while (f && fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%lx-%lx ", &l, &h) == 2 && strchr(line, '-') < strchr(line, ' ')) {
			in = a >= l && a < h;
			if (in) {
				*lo = l;
				*hi = h;
			}
		} else if (in && !strncmp(line, "VmFlags:", 8)) {
			snprintf(flags, cap, "%s", line + 8);
			found = 1;
		}
	}
	if (f)
		fclose(f);
	return found;
}

/* Dense regions between PROT_NONE guards (so that they stay regions of
 * their own): plain, no-huge-page advice, huge-page advice, read-only. */
#define NDENSE 4
static const size_t dense_len[NDENSE] = { 4 << 20, 1 << 20, 4 << 20, 256 << 10 };
static uint8_t *dense[NDENSE];
static unsigned long dense_lo[NDENSE], dense_hi[NDENSE];
static char dense_flags[NDENSE][512];

static void dense_make(void)
{
	for (int d = 0; d < NDENSE; d++) {
		uint8_t *base = mmap(NULL, dense_len[d] + 2 * PG, PROT_NONE,
		                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		ZOO_CHECK(base != MAP_FAILED, "mmap dense region %d", d);
		dense[d] = base + PG;
		ZOO_CHECK(mprotect(dense[d], dense_len[d], PROT_READ | PROT_WRITE) == 0,
		          "mprotect dense region %d", d);
		if (d == 1)
			ZOO_CHECK(madvise(dense[d], dense_len[d], MADV_NOHUGEPAGE) == 0, "MADV_NOHUGEPAGE");
		if (d == 2)
			ZOO_CHECK(madvise(dense[d], dense_len[d], MADV_HUGEPAGE) == 0, "MADV_HUGEPAGE");
		for (size_t o = 0; o < dense_len[d]; o += 8)
			*(uint64_t *)(dense[d] + o) = pat(100 + (uint64_t)d, o);
		if (d == 3)
			ZOO_CHECK(mprotect(dense[d], dense_len[d], PROT_READ) == 0, "mprotect read-only");
		ZOO_CHECK(region_of(dense[d], &dense_lo[d], &dense_hi[d], dense_flags[d],
		                    sizeof(dense_flags[d])), "dense region %d not in smaps", d);
	}
}

static void dense_check(void)
{
	for (int d = 0; d < NDENSE; d++) {
		unsigned long lo = 0, hi = 0;
		char flags[512];
		ZOO_CHECK(region_of(dense[d], &lo, &hi, flags, sizeof(flags)),
		          "dense region %d gone", d);
		ZOO_CHECK(lo == dense_lo[d] && hi == dense_hi[d],
		          "dense region %d: %#lx-%#lx, was %#lx-%#lx", d, lo, hi, dense_lo[d],
		          dense_hi[d]);
		ZOO_CHECK(!strcmp(flags, dense_flags[d]), "dense region %d: VmFlags%s, was%s", d,
		          flags, dense_flags[d]);
		for (size_t o = 0; o < dense_len[d]; o += 8)
			ZOO_CHECK(*(uint64_t *)(dense[d] + o) == pat(100 + (uint64_t)d, o),
			          "dense region %d: word at %#zx lost", d, o);
	}
	/* still writable where it was (first write after the restore) */
	dense[0][5] ^= 0xff;
	ZOO_CHECK(dense[0][5] == (uint8_t)(pat(100, 0) >> 40 ^ 0xff), "dense write");
	dense[0][5] ^= 0xff;
}

int main(void)
{
	char fpriv[] = "zoo_memory.private.XXXXXX", fshared[] = "zoo_memory.shared.XXXXXX";
	static uint64_t *blocks[4096];
	uint8_t *sparse, *ro, *none, *guard, *locked, *pm, *sm;
	uint64_t grown = 0, last_sum = 0;
	int fp, fs;
	pthread_t t;
	double end;
	const size_t FSZ = 64 * PG;

	/* sparse 1 GiB: a few pages touched */
	sparse = mmap(NULL, GIB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	ZOO_CHECK(sparse != MAP_FAILED, "mmap 1 GiB");
	for (uint64_t i = 0; i < 16; i++)
		*(uint64_t *)(sparse + i * (GIB / 16) + 123 * PG) = pat(1, i);
	/* shared anonymous between threads */
	shm = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ZOO_CHECK(shm != MAP_FAILED, "mmap shared");
	/* private and shared file mappings, dirtied */
	fp = mkstemp(fpriv);
	fs = mkstemp(fshared);
	ZOO_CHECK(fp >= 0 && fs >= 0, "mkstemp");
	{
		uint8_t buf[PG];
		for (size_t p = 0; p < FSZ / PG; p++) {
			memset(buf, (int)(p + 1), PG);
			ZOO_CHECK(write(fp, buf, PG) == (ssize_t)PG && write(fs, buf, PG) == (ssize_t)PG, "write");
		}
	}
	pm = mmap(NULL, FSZ, PROT_READ | PROT_WRITE, MAP_PRIVATE, fp, 0);
	sm = mmap(NULL, FSZ, PROT_READ | PROT_WRITE, MAP_SHARED, fs, 0);
	ZOO_CHECK(pm != MAP_FAILED && sm != MAP_FAILED, "mmap files");
	for (size_t p = 0; p < FSZ / PG; p += 3) {
		memset(pm + p * PG, 0xa0 + (int)(p % 16), 100);
		memset(sm + p * PG, 0xb0 + (int)(p % 16), 100);
	}
	/* protections: read-only with data, PROT_NONE with data, a guard page */
	ro = mmap(NULL, 4 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	none = mmap(NULL, 4 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	guard = mmap(NULL, 3 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	for (int i = 0; i < 4; i++) {
		memset(ro + i * PG, 0x11 + i, PG);
		memset(none + i * PG, 0x22 + i, PG);
	}
	memset(guard, 0x33, 3 * PG);
	mprotect(ro, 4 * PG, PROT_READ);
	mprotect(none, 4 * PG, PROT_NONE);
	mprotect(guard + PG, PG, PROT_NONE);
	locked = mmap(NULL, 2 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	memset(locked, 0x44, 2 * PG);
	ZOO_CHECK(mlock(locked, 2 * PG) == 0, "mlock");
	madvise(locked, 2 * PG, MADV_DONTFORK);

	dense_make();

	pthread_create(&t, NULL, sharer, NULL);
	zoo_ready();
	end = zoo_now() + zoo_seconds();
	while (zoo_running(end)) {
		uint64_t *g;
		uint64_t sum = 0;
		/* heap grows through brk, also after every restore */
		g = sbrk(64 * 1024);
		ZOO_CHECK(g != (void *)-1, "sbrk");
		ZOO_CHECK(grown < 4096, "too many blocks");
		blocks[grown] = g;
		for (size_t i = 0; i < 64 * 1024 / 8; i++)
			g[i] = pat(grown, i);
		grown++;
		/* everything grown so far is intact */
		for (uint64_t k = 0; k < grown; k++) {
			uint64_t *q = blocks[k];
			ZOO_CHECK(q[0] == pat(k, 0) && q[8191] == pat(k, 8191), "heap block %lu lost",
			          (unsigned long)k);
		}
		for (uint64_t i = 0; i < 16; i++)
			ZOO_CHECK(*(uint64_t *)(sparse + i * (GIB / 16) + 123 * PG) == pat(1, i),
			          "sparse page %lu lost", (unsigned long)i);
		for (int i = 0; i < 1024; i++)
			sum += __atomic_load_n(&shm[i * 16], __ATOMIC_RELAXED);
		ZOO_CHECK(sum >= last_sum, "shared counters went back (%lu < %lu)",
		          (unsigned long)sum, (unsigned long)last_sum);
		last_sum = sum;
		zoo_check_identity(zoo_pid0);
		usleep(20000);
	}
	stop = 1;
	pthread_join(t, NULL);
	{
		uint64_t sum = 0;
		for (int i = 0; i < 1024; i++)
			sum += shm[i * 16];
		ZOO_CHECK(sum > last_sum / 2 && sum >= last_sum, "shared memory not shared (sum %lu)",
		          (unsigned long)sum);
	}
	ZOO_CHECK((uint8_t *)sbrk(0) >= (uint8_t *)blocks[grown - 1] + 64 * 1024, "brk went back");
	/* file mappings: private changes kept, file untouched; shared in the file */
	for (size_t p = 0; p < FSZ / PG; p++) {
		uint8_t fb[100];
		int dirty = p % 3 == 0;
		ZOO_CHECK(pm[p * PG] == (dirty ? 0xa0 + p % 16 : p + 1), "private file page %zu", p);
		ZOO_CHECK(pm[p * PG + 200] == (uint8_t)(p + 1), "private file page %zu tail", p);
		ZOO_CHECK(sm[p * PG] == (dirty ? 0xb0 + p % 16 : p + 1), "shared file page %zu", p);
		ZOO_CHECK(pread(fs, fb, 100, (off_t)(p * PG)) == 100 && fb[0] == sm[p * PG],
		          "shared file page %zu not in the file", p);
		ZOO_CHECK(pread(fp, fb, 100, (off_t)(p * PG)) == 100 && fb[0] == (uint8_t)(p + 1),
		          "private mapping leaked into the file at page %zu", p);
	}
	/* protections kept, contents intact */
	for (int i = 0; i < 4; i++)
		ZOO_CHECK(ro[i * PG + 7] == 0x11 + i, "read-only page %d", i);
	ZOO_CHECK(mprotect(none, 4 * PG, PROT_READ) == 0, "mprotect");
	for (int i = 0; i < 4; i++)
		ZOO_CHECK(none[i * PG + 9] == 0x22 + i, "PROT_NONE page %d lost its contents", i);
	ZOO_CHECK(guard[0] == 0x33 && guard[2 * PG] == 0x33, "guard neighbours");
	{
		FILE *f = fopen("/proc/self/maps", "r");
		char line[512];
		int ok_ro = 0, ok_guard = 0;
		while (f && fgets(line, sizeof(line), f)) {
			unsigned long lo, hi;
			char perm[8];
			if (sscanf(line, "%lx-%lx %7s", &lo, &hi, perm) != 3)
				continue;
			if (lo <= (unsigned long)ro && hi >= (unsigned long)ro + 4 * PG &&
			    !strncmp(perm, "r--", 3))
				ok_ro = 1;
			if (lo <= (unsigned long)(guard + PG) && hi >= (unsigned long)guard + 2 * PG &&
			    !strncmp(perm, "---", 3))
				ok_guard = 1;
		}
		if (f)
			fclose(f);
		ZOO_CHECK(ok_ro, "read-only region lost its protection");
		ZOO_CHECK(ok_guard, "guard page lost");
	}
	dense_check();
	ZOO_CHECK(locked[5] == 0x44, "locked region");
	ZOO_CHECK(vmflag(locked, " lo"), "mlock lost");
	ZOO_CHECK(vmflag(locked, " dc"), "MADV_DONTFORK lost");
	{
		/* the sparse gigabyte stayed sparse */
		unsigned char vec[256];
		size_t resident = 0;
		for (uint64_t off = 0; off < GIB; off += 256 * PG) {
			ZOO_CHECK(mincore(sparse + off, 256 * PG, vec) == 0, "mincore");
			for (int i = 0; i < 256; i++)
				resident += vec[i] & 1;
		}
		ZOO_CHECK(resident < 64, "sparse mapping became %zu resident pages", resident);
	}
	unlink(fpriv);
	unlink(fshared);
	printf("heap grew %lu x 64 KiB, shared sum %lu\n", (unsigned long)grown,
	       (unsigned long)last_sum);
	zoo_pass("zoo_memory");
}
