/* test-pagesize.c — the weight loader asks for the page size instead of
 * assuming 4 KiB (Arm servers run 4, 16 and 64 KiB pages).
 *
 * The test is linked with -Wl,--wrap for mmap, munmap and madvise: the
 * wrappers apply the kernel's alignment rules at sysconf(_SC_PAGESIZE)
 * (EINVAL for a file offset or an address that is not a multiple of it) and
 * count the calls. That matters under qemu-user: with QEMU_PAGESIZE=65536
 * (tests/run.sh's arm64 stage) a program is told 64 KiB pages by sysconf()
 * and AT_PAGESZ, but qemu still maps at 4 KiB granularity and would accept
 * an mmap at a 4 KiB file offset that a 64 KiB-page kernel refuses; the
 * wrappers refuse it as that kernel does. AW_EXPECT_PAGESIZE, when set, is
 * the page size the run must see (so an emulation that did not take effect
 * fails instead of testing 4 KiB twice).
 *
 * Checked for every load method (uring falls back to pread where io_uring is
 * missing, as under qemu-user), with the smallest request size (4 KiB, finer
 * than a 64 KiB page) and regions at odd offsets that cross page boundaries:
 * the bytes arrive, the reported page size is the system's, and the
 * loader's allocator returns page-aligned, page-multiple, zeroed memory.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <unistd.h>

#include "loader.h"

/* ---- the kernel's alignment rules, at this run's page size ----------------- */

void *__real_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off);
void *__real_mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t off);
int __real_munmap(void *addr, size_t len);
int __real_madvise(void *addr, size_t len, int advice);
void *__wrap_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off);
void *__wrap_mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t off);
int __wrap_munmap(void *addr, size_t len);
int __wrap_madvise(void *addr, size_t len, int advice);

static size_t page;
static unsigned n_mmap, n_file_mmap, n_munmap, n_refused;

static int misaligned(uint64_t v)
{
	if (v % page == 0)
		return 0;
	n_refused++;
	errno = EINVAL;
	return 1;
}

static int check_mmap(void *addr, int flags, off_t off)
{
	n_mmap++;
	if (!(flags & MAP_ANONYMOUS))
		n_file_mmap++;
	return misaligned((uint64_t)off) || ((flags & MAP_FIXED) && misaligned((uintptr_t)addr));
}

void *__wrap_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	if (check_mmap(addr, flags, off))
		return MAP_FAILED;
	return __real_mmap(addr, len, prot, flags, fd, off);
}

void *__wrap_mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	if (check_mmap(addr, flags, off))
		return MAP_FAILED;
	return __real_mmap64(addr, len, prot, flags, fd, off);
}

int __wrap_munmap(void *addr, size_t len)
{
	n_munmap++;
	if (misaligned((uintptr_t)addr))
		return -1;
	return __real_munmap(addr, len);
}

int __wrap_madvise(void *addr, size_t len, int advice)
{
	if (misaligned((uintptr_t)addr))
		return -1;
	return __real_madvise(addr, len, advice);
}

/* ---- tests -------------------------------------------------------------- */

static char path[256];
static uint8_t *file;
static size_t file_size;

static int setup(void **state)
{
	const char *dir = getenv("TMPDIR");
	int fd;

	(void)state;
	snprintf(path, sizeof(path), "%s/aw-pagesize-XXXXXX", dir && *dir ? dir : "/tmp");
	fd = mkstemp(path);
	if (fd < 0)
		return -1;
	/* three pages and a bit, whatever the page size */
	file_size = 3 * page + 12345;
	file = malloc(file_size);
	if (!file)
		return -1;
	for (size_t i = 0; i < file_size; i++)
		file[i] = (uint8_t)(i * 2654435761u >> 13);
	if (write(fd, file, file_size) != (ssize_t)file_size)
		return -1;
	close(fd);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	unlink(path);
	free(file);
	return 0;
}

static void test_page_size(void **state)
{
	const char *want = getenv("AW_EXPECT_PAGESIZE");

	(void)state;
	printf("# page size %zu\n", page);
	assert_true(page >= 4096 && (page & (page - 1)) == 0);
	assert_int_equal(getauxval(AT_PAGESZ), page);
	if (want && *want)
		assert_int_equal(page, strtoul(want, NULL, 10));
}

static void test_load_regions(void **state)
{
	static const enum aw_load_method methods[] = {AW_LOAD_URING, AW_LOAD_READ, AW_LOAD_MMAP};
	static const char *const names[] = {"uring", "read", "mmap"};
	/* offsets: odd; just below a page end; 4 KiB past a page (page aligned
	 * only on a 4 KiB-page system); the whole file */
	const struct {
		uint64_t offset, size;
	} regions[] = {
		{1, page},	  {page - 1, 2},  {page + 4096, 3 * 4096 + 5},
		{4096, 2 * page}, {0, file_size},
	};

	(void)state;
	for (size_t m = 0; m < sizeof(methods) / sizeof(methods[0]); m++) {
		for (size_t i = 0; i < sizeof(regions) / sizeof(regions[0]); i++) {
			const struct aw_load_region rg = {.offset = regions[i].offset,
							  .size = regions[i].size};
			const struct aw_load_opts o = {.method = methods[m],
						       .request_size = 4096,
						       .hugepages = AW_LOAD_HUGE_OFF};
			const unsigned refused = n_refused;
			struct aw_weights *w = NULL;
			struct aw_err err = {0};
			int r = aw_loader_load(path, &rg, &o, &w, &err);

			if (r != 0)
				fail_msg("%s [%llu, +%llu): %d %s (%u calls refused)", names[m],
					 (unsigned long long)rg.offset, (unsigned long long)rg.size,
					 r, err.msg, n_refused - refused);
			assert_int_equal(n_refused, refused);
			const struct aw_weights_info *info = aw_weights_info(w);

			assert_int_equal(info->size, rg.size);
			assert_int_equal(info->hugetlb, 0);
			assert_int_equal(info->page_size, page);
			assert_memory_equal(aw_weights_data(w, 0), file + rg.offset, rg.size);
			aw_weights_put(w);
		}
	}
	/* the wrappers saw the loader's calls: the mmap method maps the file */
	assert_true(n_file_mmap >= sizeof(regions) / sizeof(regions[0]));
	assert_true(n_munmap > 0);
}

static void test_mem_alloc(void **state)
{
	const size_t lens[] = {1, page - 1, page + 1, 5 * page + 17};

	(void)state;
	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		struct aw_load_mem m;
		const unsigned before = n_mmap;
		uint8_t *p = aw_loader_mem_alloc(lens[i], -1, AW_LOAD_HUGE_OFF, &m);

		assert_non_null(p);
		assert_true(n_mmap > before);
		assert_int_equal((uintptr_t)p % page, 0);
		assert_int_equal(m.page_size, page);
		assert_int_equal(m.hugetlb, 0);
		assert_true(m.map_len >= lens[i] && m.map_len % page == 0);
		for (size_t j = 0; j < lens[i]; j++)
			assert_int_equal(p[j], 0);
		memset(p, 0xa5, lens[i]);
		aw_loader_mem_free(p, &m);
	}
	assert_int_equal(n_refused, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_page_size),
		cmocka_unit_test(test_load_regions),
		cmocka_unit_test(test_mem_alloc),
	};

	page = (size_t)sysconf(_SC_PAGESIZE);
	return cmocka_run_group_tests(tests, setup, teardown);
}
