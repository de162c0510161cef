// The memory-limit default from the process's own cgroup (os/cgroup.c),
// on fake trees: each case writes a /proc/self/cgroup, a
// /proc/self/mountinfo and the cgroup files under a temporary root and
// reads the limit through it, so v1, v2, hybrid systems, nested services,
// bind mounts and namespaces are all checked on any machine. The last case
// checks the real tree against the limit the scavenger took at start-up.

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gort/alloc.h"
#include "os/os.h"
#include "test.h"

#define GiB ((int64_t)1 << 30)

static char root[256];

// Removes the current fake tree (a case that fails leaves its tree behind,
// to be looked at).
static void remove_root(void) {
  if (root[0] == '\0') return;
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
  EXPECT(system(cmd) == 0, "%s", cmd);
  root[0] = '\0';
}

static void make_root(void) {
  remove_root();
  snprintf(root, sizeof root, "/tmp/gort-cgroup-XXXXXX");
  EXPECT(mkdtemp(root) != NULL, "mkdtemp: %s", strerror(errno));
}

// Writes content to root/rel, making the directories on the way.
static void put(const char *rel, const char *content) {
  char path[1024];
  snprintf(path, sizeof path, "%s/%s", root, rel);
  for (char *p = path + strlen(root) + 1; *p; p++) {
    if (*p != '/') continue;
    *p = '\0';
    mkdir(path, 0755);
    *p = '/';
  }
  FILE *f = fopen(path, "w");
  EXPECT(f != NULL, "%s: %s", path, strerror(errno));
  fputs(content, f);
  fclose(f);
}

static const char *v2_mount =
    "24 1 0:21 / / rw - ext4 /dev/sda1 rw\n"
    "31 23 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 "
    "rw,nsdelegate,memory_recursiveprot\n";

TEST(cgroup_v2_takes_the_smallest_memory_max_up_the_path) {
  make_root();
  put("proc/self/cgroup", "0::/system.slice/app.service\n");
  put("proc/self/mountinfo", v2_mount);
  put("sys/fs/cgroup/system.slice/memory.max", "2147483648\n");
  put("sys/fs/cgroup/system.slice/app.service/memory.max", "max\n");
  put("sys/fs/cgroup/system.slice/app.service/memory.high", "max\n");
  EXPECT_EQ_U64(gort__os_cgroup_memory_limit(root), 2 * GiB);
  put("sys/fs/cgroup/system.slice/app.service/memory.max", "1073741824\n");
  EXPECT_EQ_U64(gort__os_cgroup_memory_limit(root), GiB, "the service's own MemoryMax=");
  remove_root();
}

TEST(cgroup_v2_memory_high_counts_as_a_limit) {
  make_root();
  put("proc/self/cgroup", "0::/user.slice/u.scope\n");
  put("proc/self/mountinfo", v2_mount);
  put("sys/fs/cgroup/user.slice/u.scope/memory.max", "4294967296\n");
  put("sys/fs/cgroup/user.slice/u.scope/memory.high", "3221225472\n");
  EXPECT_EQ_U64(gort__os_cgroup_memory_limit(root), 3 * GiB);
  remove_root();
}

TEST(cgroup_v2_with_max_everywhere_is_no_limit) {
  make_root();
  put("proc/self/cgroup", "0::/a/b\n");
  put("proc/self/mountinfo", v2_mount);
  put("sys/fs/cgroup/a/memory.max", "max\n");
  put("sys/fs/cgroup/a/b/memory.max", "max\n");
  put("sys/fs/cgroup/a/b/memory.high", "max\n");
  EXPECT_EQ_U64(gort__os_cgroup_memory_limit(root), INT64_MAX);
  remove_root();
}

TEST(cgroup_v1_reads_memory_limit_in_bytes_and_knows_its_unlimited) {
  make_root();
  put("proc/self/cgroup", "5:devices:/\n4:memory:/docker/abc\n3:cpu,cpuacct:/docker/abc\n");
  put("proc/self/mountinfo",
      "24 1 0:21 / / rw - ext4 /dev/sda1 rw\n"
      "35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n"
      "36 31 0:33 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct\n");
  put("sys/fs/cgroup/memory/memory.limit_in_bytes", "9223372036854771712\n");
  put("sys/fs/cgroup/memory/docker/memory.limit_in_bytes", "9223372036854771712\n");
  put("sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes", "9223372036854771712\n");
  put("sys/fs/cgroup/cpu,cpuacct/docker/abc/memory.limit_in_bytes", "1\n");  // not memory's
  EXPECT_EQ_U64(gort__os_cgroup_memory_limit(root), INT64_MAX, "v1's unlimited");
  put("sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes", "536870912\n");
  EXPECT_EQ_U64(gort__os_cgroup_memory_limit(root), GiB / 2);
  remove_root();
}

TEST(cgroup_hybrid_system_takes_the_v1_memory_limit) {
  make_root();
  put("proc/self/cgroup", "4:memory:/svc\n0::/svc\n");
  put("proc/self/mountinfo",
      "35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n"
      "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n");
  put("sys/fs/cgroup/memory/svc/memory.limit_in_bytes", "268435456\n");
  put("sys/fs/cgroup/unified/svc/cgroup.procs", "1\n");  // v2 without the memory controller
  EXPECT_EQ_U64(gort__os_cgroup_memory_limit(root), GiB / 4);
  remove_root();
}

// In a container the mount shows a subtree: its root field names where it
// starts, and the process's path is either below it or "/" (namespace).
TEST(cgroup_mount_of_a_subtree_is_walked_from_the_right_directory) {
  make_root();
  put("proc/self/cgroup", "0::/\n");
  put("proc/self/mountinfo",
      "900 800 0:26 /kubepods/pod1/ctr /sys/fs/cgroup ro,nosuid - cgroup2 cgroup2 rw\n");
  put("sys/fs/cgroup/memory.max", "300000000\n");
  EXPECT_EQ_U64(gort__os_cgroup_memory_limit(root), 300000000, "namespace root");

  make_root();
  put("proc/self/cgroup", "0::/user.slice/user-1000.slice/session-2.scope\n");
  put("proc/self/mountinfo",
      "31 23 0:26 /user.slice /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n"
      "32 23 0:26 / /mnt/whole rw - cgroup2 cgroup2 rw\n");
  put("sys/fs/cgroup/user-1000.slice/memory.max", "700000000\n");
  put("sys/fs/cgroup/user-1000.slice/session-2.scope/memory.max", "max\n");
  put("sys/fs/memory.max", "1\n");  // above the mount point: never read
  EXPECT_EQ_U64(gort__os_cgroup_memory_limit(root), 700000000, "bind mount of a slice");
  remove_root();
}

TEST(cgroup_mountinfo_escapes_and_long_lines_are_handled) {
  make_root();
  char mounts[8192];
  char opts[5000];
  memset(opts, 'x', sizeof opts - 1);
  opts[sizeof opts - 1] = '\0';
  snprintf(mounts, sizeof mounts,
           "50 1 0:40 / /var/lib/docker/overlay rw - overlay overlay rw,lowerdir=%s\n"
           "51 23 0:26 / /sys/fs/my\\040cgroup rw - cgroup2 cgroup2 rw\n",
           opts);
  put("proc/self/cgroup", "0::/job\n");
  put("proc/self/mountinfo", mounts);
  put("sys/fs/my cgroup/job/memory.max", "123456789\n");
  EXPECT_EQ_U64(gort__os_cgroup_memory_limit(root), 123456789);
  remove_root();
}

TEST(cgroup_missing_files_mean_no_limit) {
  make_root();
  EXPECT_EQ_U64(gort__os_cgroup_memory_limit(root), INT64_MAX, "empty root");
  put("proc/self/cgroup", "0::/gone\n");
  put("proc/self/mountinfo", v2_mount);
  EXPECT_EQ_U64(gort__os_cgroup_memory_limit(root), INT64_MAX, "no cgroup directory");
  remove_root();
}

TEST(cgroup_limit_of_this_machine_is_the_default_memory_limit) {
  SKIP_IF(getenv("GORT_MEMLIMIT") != NULL, "GORT_MEMLIMIT is set for this run");
  int64_t mine = gort__os_cgroup_memory_limit(NULL);
  EXPECT_EQ_U64(gort_set_memory_limit(-1), mine, "the limit in force is the cgroup's");
  printf("  this process's cgroup limit: %lld\n", (long long)mine);
}
