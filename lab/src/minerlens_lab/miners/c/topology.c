/* XMRig's start-up topology scan (hwloc): before mining it reads the CPU, cache and NUMA description of
 * the machine from sysfs and procfs - in strace about 200 openat/read/close plus directory listings on a
 * 2-core machine. The XMRig profile does the same walk (the values are only counted, the miner does not
 * need them): /proc/cpuinfo, /sys/devices/system/cpu/{online,possible,present}, every cpu's topology/ and
 * cache/index* files, every node's cpumap/meminfo/distance. */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "counters.h"
#include "miner.h"

static int files_read;

static void read_file(const char *path)
{
    char buf[4096];
    int fd = ML_SC(open(path, O_RDONLY | O_CLOEXEC));
    if (fd < 0)
        return;
    if (ML_SC(read(fd, buf, sizeof buf)) < 0) {
        /* an unreadable attribute: hwloc skips it too */
    }
    ML_SC(close(fd));
    files_read++;
}

/* every regular file directly in `dir` */
static void read_dir(const char *dir)
{
    ml_count(3); /* opendir: openat, fstat; closedir: close */
    DIR *d = opendir(dir);
    if (d == NULL)
        return;
    struct dirent *e;
    char path[512];
    while ((e = readdir(d)) != NULL) { /* getdents64, counted below */
        if (e->d_name[0] == '.' || e->d_type == DT_DIR || e->d_type == DT_LNK)
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        read_file(path);
    }
    ml_count(2);
    closedir(d);
}

static int is_numbered(const char *name, const char *prefix)
{
    size_t n = strlen(prefix);
    return strncmp(name, prefix, n) == 0 && name[n] >= '0' && name[n] <= '9';
}

static void each_numbered(const char *dir, const char *prefix, void (*fn)(const char *path))
{
    ml_count(5);
    DIR *d = opendir(dir);
    if (d == NULL)
        return;
    struct dirent *e;
    char path[512];
    while ((e = readdir(d)) != NULL) {
        if (!is_numbered(e->d_name, prefix))
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        fn(path);
    }
    closedir(d);
}

static void cache_index(const char *path)
{
    read_dir(path);
}

static void cpu(const char *path)
{
    char sub[512];
    snprintf(sub, sizeof sub, "%s/topology", path);
    read_dir(sub);
    snprintf(sub, sizeof sub, "%s/cache", path);
    each_numbered(sub, "index", cache_index);
}

static void node(const char *path)
{
    const char *files[] = {"cpumap", "meminfo", "distance"};
    char sub[512];
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(sub, sizeof sub, "%s/%s", path, files[i]);
        read_file(sub);
    }
}

void topology_scan(void)
{
    read_file("/proc/cpuinfo");
    read_file("/sys/devices/system/cpu/online");
    read_file("/sys/devices/system/cpu/possible");
    read_file("/sys/devices/system/cpu/present");
    each_numbered("/sys/devices/system/cpu", "cpu", cpu);
    each_numbered("/sys/devices/system/node", "node", node);
    ml_log("cpu topology: %d files read", files_read);
}
