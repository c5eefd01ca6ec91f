/* Large allocations the way miners make them: MAP_HUGETLB first, then a 2 MiB-aligned mapping with
 * madvise(MADV_HUGEPAGE) (transparent huge pages), then plain pages. */
#ifndef ML_HUGEMEM_H
#define ML_HUGEMEM_H

#include <stddef.h>

enum ml_pages { ML_PAGES_HUGETLB, ML_PAGES_THP, ML_PAGES_NORMAL };

struct ml_mem {
    void *ptr;
    size_t size;
    enum ml_pages pages;
};

int ml_alloc_large(size_t size, int try_huge, struct ml_mem *out);
void ml_free_large(struct ml_mem *mem);
const char *ml_pages_name(enum ml_pages pages);

#endif
