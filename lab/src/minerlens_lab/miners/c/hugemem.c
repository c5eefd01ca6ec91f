#define _GNU_SOURCE
#include "hugemem.h"

#include <stdint.h>
#include <sys/mman.h>

#include "counters.h"

#define HUGE_2M ((size_t)2 << 20)

int ml_alloc_large(size_t size, int try_huge, struct ml_mem *out)
{
    size_t rounded = (size + HUGE_2M - 1) & ~(HUGE_2M - 1);
    if (try_huge) {
        void *p = ML_SC(mmap(NULL, rounded, PROT_READ | PROT_WRITE,
                             MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB | MAP_POPULATE, -1, 0));
        if (p != MAP_FAILED) {
            *out = (struct ml_mem){p, rounded, ML_PAGES_HUGETLB};
            return 0;
        }
    }
    /* over-allocate to place the block on a 2 MiB boundary, so THP can back it */
    size_t span = rounded + HUGE_2M;
    uint8_t *raw = ML_SC(mmap(NULL, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    if (raw == MAP_FAILED)
        return -1;
    uint8_t *aligned = (uint8_t *)(((uintptr_t)raw + HUGE_2M - 1) & ~(uintptr_t)(HUGE_2M - 1));
    size_t head = (size_t)(aligned - raw), tail = span - head - rounded;
    if (head)
        ML_SC(munmap(raw, head));
    if (tail)
        ML_SC(munmap(aligned + rounded, tail));
    enum ml_pages pages = ML_PAGES_NORMAL;
    if (try_huge && ML_SC(madvise(aligned, rounded, MADV_HUGEPAGE)) == 0)
        pages = ML_PAGES_THP;
    *out = (struct ml_mem){aligned, rounded, pages};
    return 0;
}

void ml_free_large(struct ml_mem *mem)
{
    if (mem->ptr != NULL)
        ML_SC(munmap(mem->ptr, mem->size));
    mem->ptr = NULL;
}

const char *ml_pages_name(enum ml_pages pages)
{
    switch (pages) {
    case ML_PAGES_HUGETLB:
        return "hugetlb";
    case ML_PAGES_THP:
        return "thp";
    default:
        return "none";
    }
}
