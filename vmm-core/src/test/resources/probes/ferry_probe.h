/*
 * Helpers for CProbe probe programs (dev.ferry.core.testing.CProbe): each macro prints one
 * "KEY VALUE" line, VALUE as a signed 64-bit decimal. Keys must not contain whitespace.
 */
#ifndef FERRY_PROBE_H
#define FERRY_PROBE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* The name is stringified as written, before macro expansion: FERRY_PROBE(MAP_SHARED) prints "MAP_SHARED 1". */
#define FERRY_PROBE(name) printf("%s %lld\n", #name, (long long)(name))
#define FERRY_PROBE_AS(key, expr) printf("%s %lld\n", (key), (long long)(expr))
#define FERRY_SIZEOF(key, type) FERRY_PROBE_AS(key, sizeof(type))
#define FERRY_OFFSETOF(key, type, member) FERRY_PROBE_AS(key, offsetof(type, member))

#endif
