#ifndef CSPAWN_H
#define CSPAWN_H

#include <spawn.h>

/// posix_spawn file actions that glibc declares only for _GNU_SOURCE, which Swift's Glibc module does not
/// define. Both return ENOSYS where the C library lacks them.
int cspawn_file_actions_addclosefrom(posix_spawn_file_actions_t *actions, int from);
int cspawn_file_actions_addchdir(posix_spawn_file_actions_t *actions, const char *path);

#endif
