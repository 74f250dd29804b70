/*
 * zoo_hog — a process with a given amount of touched memory, for the
 * engine benchmark: writes every page of MIB MiB, then keeps checking a
 * sample while it is reincarnated, and all pages at the end.
 *   zoo_hog MIB   (runs ZOO_SECONDS)
 */
#include "zoo.h"
#include <stdint.h>
#include <sys/mman.h>

int main(int argc, char **argv)
{
	size_t mib = argc > 1 ? strtoul(argv[1], NULL, 10) : 10, len = mib << 20;
	uint64_t *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	size_t words = len / 8;
	double end;

	ZOO_CHECK(m != MAP_FAILED, "mmap %zu MiB", mib);
	for (size_t i = 0; i < words; i += 512)
		m[i] = i * 0x9e3779b97f4a7c15ULL;
	zoo_ready();
	end = zoo_now() + zoo_seconds();
	while (zoo_running(end)) {
		for (size_t i = 0; i < words; i += 512 * 97)
			ZOO_CHECK(m[i] == i * 0x9e3779b97f4a7c15ULL, "word %zu lost", i);
		usleep(50000);
	}
	for (size_t i = 0; i < words; i += 512)
		ZOO_CHECK(m[i] == i * 0x9e3779b97f4a7c15ULL, "word %zu lost", i);
	zoo_pass("zoo_hog");
}
